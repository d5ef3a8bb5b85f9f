package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-primus/primus/cluster"
)

// The cluster.Journal of a Backend made with Options.Durable: one Redis
// Stream, "<namespace>:journal", one entry per journal entry (a field "d"
// with its data), trimmed to about Durability.MaxLen entries. An entry's id
// "ms-seq" is its cluster.Offset{Hi: ms, Lo: seq}.
//
// The ids are not XADD's own: the append script gives each entry the id
// "<ms>-<n>", ms the time of Redis's clock (never less than the last
// entry's) and n the number of entries ever appended, the last entry's n
// plus one. The Lo of consecutive entries thus follow each other, so a
// reader knows exactly whether entries between the last one it had and the
// next one were trimmed: Read returns cluster.ErrTrimmed, and Follow calls
// gap, when the next entry's Lo is not the previous one's plus one (1 after
// the zero Offset). XINFO STREAM cannot tell this: trimming (MAXLEN) does
// not move its max-deleted-entry-id, only XDEL does.
//
// Append runs one Lua script per batch (per chunk of a large one): for each
// entry it reads its publisher's last stored Seq, from the key
// "<namespace>:journal:pub:<publisher>", and either skips the entry, when
// that is already as high, or adds it (XADD … MAXLEN) and stores its Seq.
// Redis runs a script as one step, so a retried batch never stores an entry
// twice, even when the first attempt failed after Redis had run it. The
// publisher keys expire an hour after their last append: a retry is
// expected within seconds, and a restarted node is a new publisher.
//
// Trimming is approximate (MAXLEN ~, whole macro-nodes of about a hundred
// entries, which is cheap) unless MaxLen is below 1,000, where it is exact,
// so that a small journal keeps what it says.
//
// Follow waits for new entries with XREAD BLOCK (Durability.Block), on a
// connection of its own that its Close unblocks (CLIENT UNBLOCK); a
// follower is one of the backend's durable subscriptions, so Close of the
// Backend ends it too. Across a Redis restart, the journal survives only
// with Redis persistence (appendonly); a journal lost restarts its count at
// 1, which its readers see as entries trimmed. Redis 6.2 or later
// (exclusive XRANGE bounds).

var _ cluster.Journal = (*Backend)(nil)

const (
	// publisherTTL is how long a publisher's last Seq is kept after its
	// last append.
	publisherTTL = time.Hour
	// exactTrimBelow is the MaxLen under which the journal is trimmed
	// exactly (MAXLEN =) rather than by whole macro-nodes (MAXLEN ~).
	exactTrimBelow = 1000
	// appendChunk and appendChunkBytes bound the entries of one script
	// run: Redis does nothing else while it runs.
	appendChunk      = 512
	appendChunkBytes = 1 << 20
	// pageSize is the number of entries read per XRANGE or XREAD.
	pageSize = 512
)

// appendScript appends entries to the journal, skipping those whose
// publisher already stored their Seq or a higher one, with ids "<ms>-<n>"
// (see above). Seqs are compared as decimal strings (longer is higher, then
// byte order), exact for any uint64, which Lua's numbers are not.
//
//	KEYS[1] the stream; KEYS[2…] the publishers' keys. ARGV[1] MaxLen;
//	ARGV[2] "~" or "="; ARGV[3] the publishers' keys' ttl in ms; then per
//	entry three: the index of its publisher's key in KEYS, its Seq, its
//	data. Returns the number of entries added.
var appendScript = goredis.NewScript(`
local function ge(a, b)
  if #a ~= #b then return #a > #b end
  return a >= b
end
local id
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  id = top[1][1]
else
  -- Empty: trimmed to nothing (XTRIM), or never written.
  local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
  if not info.err then
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then id = info[i + 1] end
    end
  end
end
local ms, n = 0, 0
if id then
  local dash = string.find(id, '-', 1, true)
  ms, n = tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local t = redis.call('TIME')
ms = math.max(ms, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local prefix = string.format('%.0f', ms) .. '-'
local added = 0
for i = 4, #ARGV, 3 do
  local k = KEYS[tonumber(ARGV[i])]
  local seq = ARGV[i + 1]
  local last = redis.call('GET', k)
  if not last or not ge(last, seq) then
    n = n + 1
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1], prefix .. string.format('%.0f', n), 'd', ARGV[i + 2])
    redis.call('SET', k, seq)
    added = added + 1
  end
end
for j = 2, #KEYS do redis.call('PEXPIRE', KEYS[j], ARGV[3]) end
return added
`)

// errNotDurable is returned by the Journal's methods of a Backend made
// without Options.Durable.
var errNotDurable = errors.New("redis: the journal needs a Backend made with Options.Durable")

// journal returns the durable channels' state, which configures the
// journal, or errNotDurable.
func (b *Backend) journal() (*durable, error) {
	if b.dur == nil {
		return nil, errNotDurable
	}
	return b.dur, nil
}

func (b *Backend) journalKey() string { return b.ns + ":journal" }

// Append adds the entries to the journal, in order, skipping those whose
// publisher already has one with the same Seq or a higher one. A large
// batch is appended in chunks, one script run each; on error the chunks
// before the failing one are stored, and the failing one wholly or not at
// all.
func (b *Backend) Append(ctx context.Context, entries []cluster.JournalEntry) error {
	d, err := b.journal()
	if err != nil {
		return err
	}
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < appendChunk && (n == 0 || size+len(entries[n].Data) <= appendChunkBytes) {
			size += len(entries[n].Data)
			n++
		}
		if err := b.appendChunk(ctx, d, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// appendChunk runs appendScript on the entries.
func (b *Backend) appendChunk(ctx context.Context, d *durable, entries []cluster.JournalEntry) error {
	trim := "~"
	if d.cfg.MaxLen < exactTrimBelow {
		trim = "="
	}
	keys := []string{b.journalKey()}
	index := map[string]int{}
	args := make([]any, 0, 3+3*len(entries))
	args = append(args, d.cfg.MaxLen, trim, publisherTTL.Milliseconds())
	for _, e := range entries {
		i, ok := index[e.Publisher]
		if !ok {
			keys = append(keys, b.journalKey()+":pub:"+e.Publisher)
			i = len(keys) // Lua's KEYS start at 1
			index[e.Publisher] = i
		}
		args = append(args, i, strconv.FormatUint(e.Seq, 10), e.Data)
	}
	if err := appendScript.Run(ctx, b.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("redis: failed to append %d entries to the journal: %w", len(entries), err)
	}
	return nil
}

// Tail returns the offset of the journal's last entry (XREVRANGE + - COUNT
// 1), the zero Offset when it is empty.
func (b *Backend) Tail(ctx context.Context) (cluster.Offset, error) {
	if _, err := b.journal(); err != nil {
		return cluster.Offset{}, err
	}
	ents, err := b.rdb.XRevRangeN(ctx, b.journalKey(), "+", "-", 1).Result()
	if err != nil {
		return cluster.Offset{}, fmt.Errorf("redis: failed to read the journal's tail: %w", err)
	}
	if len(ents) == 0 {
		return cluster.Offset{}, nil
	}
	off, err := cluster.ParseOffset(ents[0].ID)
	if err != nil {
		return cluster.Offset{}, fmt.Errorf("redis: journal entry id: %w", err)
	}
	return off, nil
}

// Read calls f with each entry after `after` up to upto included, in
// order, a page at a time, until f returns false or ctx ends. It returns
// cluster.ErrTrimmed when entries after `after` were trimmed: before
// calling f at all when they were trimmed before the call, after the
// entries of the pages before when the trimming overtook the reading.
func (b *Backend) Read(ctx context.Context, after, upto cluster.Offset, f func(cluster.Offset, []byte) bool) error {
	if _, err := b.journal(); err != nil {
		return err
	}
	pos := after
	for pos.Less(upto) {
		ents, err := b.readPage(ctx, pos, upto)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.off.Lo != pos.Lo+1 {
				return cluster.ErrTrimmed
			}
			if e.off.Less(upto) || e.off == upto {
				if err := ctx.Err(); err != nil {
					return err
				}
				if !f(e.off, e.data) {
					return nil
				}
			}
			pos = e.off
		}
		if len(ents) < pageSize {
			return nil
		}
	}
	return nil
}

// journalEntry is an entry read from the stream.
type journalEntry struct {
	off  cluster.Offset
	data []byte
}

// readPage reads up to pageSize entries after `after` and not after
// upto and, after them, the first entry after `after` whatever its offset
// (when there is one), in one transaction: so that Read sees whether the
// next entry to read was trimmed even when the range holds nothing.
func (b *Backend) readPage(ctx context.Context, after, upto cluster.Offset) ([]journalEntry, error) {
	key := b.journalKey()
	var page, next *goredis.XMessageSliceCmd
	_, err := b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		page = p.XRangeN(ctx, key, "("+after.String(), upto.String(), pageSize)
		next = p.XRangeN(ctx, key, "("+after.String(), "+", 1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: failed to read the journal: %w", err)
	}
	msgs := page.Val()
	if len(msgs) == 0 {
		msgs = next.Val() // past upto: Read checks its Lo but does not deliver it
	}
	return journalEntries(msgs)
}

// journalEntries converts stream entries.
func journalEntries(msgs []goredis.XMessage) ([]journalEntry, error) {
	ents := make([]journalEntry, 0, len(msgs))
	for _, m := range msgs {
		off, err := cluster.ParseOffset(m.ID)
		if err != nil {
			return nil, fmt.Errorf("redis: journal entry id: %w", err)
		}
		data, _ := m.Values["d"].(string)
		ents = append(ents, journalEntry{off, []byte(data)})
	}
	return ents, nil
}

// Follow calls f with each entry after `after`, in order, from a goroutine
// of its own, until the subscription or the Backend is closed. It waits for
// entries with XREAD BLOCK (Durability.Block), and retries after errors
// with a back-off of up to two seconds, from the last entry it delivered.
// gap, when not nil, is called before an entry whose Lo is not the Lo of
// the one delivered before plus one (1 after the zero Offset): the entries
// between were trimmed before they were read.
func (b *Backend) Follow(after cluster.Offset, f func(cluster.Offset, []byte), gap func(next cluster.Offset)) (cluster.Subscription, error) {
	d, err := b.journal()
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, errors.New("redis: Follow needs a function to call")
	}
	// The follower's lifecycle is a durable subscription's, registered
	// with the others, so that Backend.Close ends it.
	life := &durableSub{d: d, key: b.journalKey(), done: make(chan struct{}), exited: make(chan struct{})}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("redis: backend closed")
	}
	d.subs[life] = struct{}{}
	d.mu.Unlock()
	s := &follower{b: b, life: life, f: f, gap: gap, last: after}
	ctx, cancel := context.WithCancel(context.Background())
	go s.watch(cancel)
	go s.run(ctx)
	return s, nil
}

// follower is a Follow subscription. With a *redis.Client (Connect's, or
// a failover client) it waits for entries on a connection of its own,
// whose XREAD BLOCK its Close ends at once with CLIENT UNBLOCK; with other
// clients Close waits for the XREAD under way (up to Durability.Block).
type follower struct {
	b    *Backend
	life *durableSub // done and exited, and the registration with the Backend
	f    func(cluster.Offset, []byte)
	gap  func(cluster.Offset)
	last cluster.Offset // the last entry delivered

	conn   *goredis.Conn // run's own connection, nil when it has none
	connID atomic.Int64  // the Redis client id of conn; 0 when none
}

// Close ends the subscription and waits for its goroutines: f is not
// called once it returns.
func (s *follower) Close() error { return s.life.Close() }

// watch ends run when the subscription is closed (by its Close or the
// Backend's): it cancels run's context and unblocks its connection until
// run has returned.
func (s *follower) watch(cancel context.CancelFunc) {
	select {
	case <-s.life.done:
	case <-s.life.exited:
		return
	}
	cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if id := s.connID.Load(); id != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.b.rdb.ClientUnblock(ctx, id).Err()
			cancel()
		}
		select {
		case <-s.life.exited:
			return
		case <-tick.C:
		}
	}
}

// run reads and delivers the journal's entries until ctx ends. It does
// not call Backend.report: the durable channels, which a journal comes
// with, report the outages.
func (s *follower) run(ctx context.Context) {
	defer close(s.life.exited)
	defer s.dropConn()
	key := s.life.key
	wait := 100 * time.Millisecond
	failing := false
	for ctx.Err() == nil {
		ents, err := s.read(ctx)
		if err != nil {
			s.dropConn()
			if ctx.Err() != nil {
				return
			}
			if !failing {
				failing = true
				s.b.log.Warn("redis: journal read failed; retrying", "stream", key, "error", err)
			}
			if !s.life.pause(ctx, &wait) {
				return
			}
			continue
		}
		if failing {
			failing = false
			wait = 100 * time.Millisecond
			s.b.log.Info("redis: journal read resumed", "stream", key, "after", s.last)
		}
		for _, e := range ents {
			if ctx.Err() != nil {
				return
			}
			if e.off.Lo != s.last.Lo+1 {
				s.b.log.Warn("redis: the journal trimmed entries before they were followed", "after", s.last, "next", e.off)
				if s.gap != nil {
					s.gap(e.off)
				}
			}
			s.f(e.off, e.data)
			s.last = e.off
		}
	}
}

// read waits, up to Durability.Block, for the entries after the last one
// delivered: none when nothing came.
func (s *follower) read(ctx context.Context) ([]journalEntry, error) {
	var r goredis.Cmdable = s.b.rdb
	if c, ok := s.b.rdb.(*goredis.Client); ok {
		if s.conn == nil {
			s.conn = c.Conn()
			id, err := s.conn.ClientID(ctx).Result()
			if err != nil {
				return nil, err
			}
			s.connID.Store(id)
		}
		r = s.conn
	}
	block := s.life.d.cfg.Block
	rctx, cancel := context.WithTimeout(ctx, block+5*time.Second)
	defer cancel()
	res, err := r.XRead(rctx, &goredis.XReadArgs{
		Streams: []string{s.life.key, s.last.String()},
		Count:   pageSize,
		Block:   block,
	}).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, nil // nothing new within block, or unblocked
	case err != nil:
		return nil, err
	case len(res) == 0:
		return nil, nil
	}
	return journalEntries(res[0].Messages)
}

// dropConn closes run's connection (after an error it may be broken; the
// next read opens another).
func (s *follower) dropConn() {
	if s.conn != nil {
		s.connID.Store(0)
		_ = s.conn.Close()
		s.conn = nil
	}
}
