package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-primus/primus/cluster"
)

// The cluster.SessionStore of every Backend (with or without
// Options.Durable): a record is a string key "<namespace>:session:<key>"
// with a PEXPIRE of its ttl. SaveSessions sends a batch in one pipeline: a
// record to create is a SET … PX, one to update only a SET … PX XX, which
// stores nothing and answers nil when the key does not exist (it expired,
// or was taken). TakeSession is GETDEL (Redis 6.2 or later), one command,
// so that of concurrent takes one gets the record.

var _ cluster.SessionStore = (*Backend)(nil)

func (b *Backend) sessionKey(key string) string { return b.ns + ":session:" + key }

// SaveSessions stores the records for ttl (at least a millisecond), in one
// pipeline, and returns the keys of those without Create that were not
// stored because no record had the key.
func (b *Backend) SaveSessions(ctx context.Context, recs []cluster.SessionRecord, ttl time.Duration) ([]string, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	ms := max(ttl.Milliseconds(), 1)
	cmds := make([]*goredis.BoolCmd, len(recs))
	_, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, r := range recs {
			args := []any{"set", b.sessionKey(r.Key), r.Data, "px", ms}
			if !r.Create {
				args = append(args, "xx")
			}
			// A BoolCmd reads SET's nil (XX and no key) as false.
			cmds[i] = goredis.NewBoolCmd(ctx, args...)
			_ = p.Process(ctx, cmds[i])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: failed to save %d session(s): %w", len(recs), err)
	}
	var missing []string
	for i, c := range cmds {
		if !c.Val() {
			missing = append(missing, recs[i].Key)
		}
	}
	return missing, nil
}

// TakeSession returns the record with the key and removes it (GETDEL), or
// cluster.ErrNotFound when there is none.
func (b *Backend) TakeSession(ctx context.Context, key string) ([]byte, error) {
	data, err := b.rdb.GetDel(ctx, b.sessionKey(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, cluster.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis: failed to take session %s: %w", key, err)
	}
	return data, nil
}

// DeleteSessions removes the records with the keys (DEL), if there are any.
func (b *Backend) DeleteSessions(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = b.sessionKey(k)
	}
	if err := b.rdb.Del(ctx, ks...).Err(); err != nil {
		return fmt.Errorf("redis: failed to delete %d session(s): %w", len(keys), err)
	}
	return nil
}
