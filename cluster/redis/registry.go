package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-primus/primus/cluster"
)

// alive is the member every node set holds besides its sparks, so that the
// set (and its expiry) exists while the node has no spark. Spark ids are
// never empty.
const alive = ""

// syncChunk bounds the members of one SADD.
const syncChunk = 1000

// updateScript applies a node's changes, unless its set has expired (the
// node is dead to the others until its next sync).
//
//	KEYS[1] the node's set; ARGV[1] ttl in ms; ARGV[2] n, the number of
//	added ids; ARGV[3 … 2+n] added; the rest removed.
var updateScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('SADD', KEYS[1], ARGV[i]) end
for i = 3 + n, #ARGV do redis.call('SREM', KEYS[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

// lookupScript finds the live node whose set holds the spark.
//
//	KEYS[1] the set of node ids; ARGV[1] the node key prefix; ARGV[2] the
//	spark id.
var lookupScript = goredis.NewScript(`
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. id
  if redis.call('EXISTS', k) == 0 then
    redis.call('SREM', KEYS[1], id)
  elseif redis.call('SISMEMBER', k, ARGV[2]) == 1 then
    return id
  end
end
return false
`)

// nodesScript lists the live nodes and their number of sparks, as
// id, count, id, count…
//
//	KEYS[1] the set of node ids; ARGV[1] the node key prefix.
var nodesScript = goredis.NewScript(`
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('SCARD', ARGV[1] .. id)
  if n == 0 then
    redis.call('SREM', KEYS[1], id)
  else
    out[#out + 1] = id
    out[#out + 1] = n - 1
  end
end
return out
`)

// Sync replaces the node's set with sparks, alive for ttl, in one
// transaction.
func (b *Backend) Sync(ctx context.Context, node string, sparks []string, ttl time.Duration) error {
	key := b.prefix + node
	_, err := b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, key)
		members := make([]any, 0, min(len(sparks), syncChunk)+1)
		members = append(members, alive)
		for _, id := range sparks {
			members = append(members, id)
			if len(members) == syncChunk {
				p.SAdd(ctx, key, members...)
				members = members[:0]
			}
		}
		if len(members) > 0 {
			p.SAdd(ctx, key, members...)
		}
		p.PExpire(ctx, key, ttl)
		p.SAdd(ctx, b.nodes, node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: failed to sync node %s: %w", node, err)
	}
	return nil
}

// Update adds and removes sparks of the node and renews its expiry, unless
// the node has expired.
func (b *Backend) Update(ctx context.Context, node string, added, removed []string, ttl time.Duration) error {
	args := make([]any, 0, 2+len(added)+len(removed))
	args = append(args, ttl.Milliseconds(), len(added))
	for _, id := range added {
		args = append(args, id)
	}
	for _, id := range removed {
		args = append(args, id)
	}
	if err := updateScript.Run(ctx, b.rdb, []string{b.prefix + node}, args...).Err(); err != nil {
		return fmt.Errorf("redis: failed to update node %s: %w", node, err)
	}
	return nil
}

// Leave removes the node and its sparks.
func (b *Backend) Leave(ctx context.Context, node string) error {
	_, err := b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, b.prefix+node)
		p.SRem(ctx, b.nodes, node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: failed to remove node %s: %w", node, err)
	}
	return nil
}

// Lookup returns the live node holding the spark.
func (b *Backend) Lookup(ctx context.Context, spark string) (string, error) {
	if spark == alive {
		return "", cluster.ErrNotFound
	}
	node, err := lookupScript.Run(ctx, b.rdb, []string{b.nodes}, b.prefix, spark).Text()
	if errors.Is(err, goredis.Nil) {
		return "", cluster.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("redis: failed to look up spark %s: %w", spark, err)
	}
	return node, nil
}

// Nodes returns the live nodes, by id.
func (b *Backend) Nodes(ctx context.Context) ([]cluster.Node, error) {
	res, err := nodesScript.Run(ctx, b.rdb, []string{b.nodes}, b.prefix).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis: failed to list the nodes: %w", err)
	}
	nodes := make([]cluster.Node, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		n, _ := res[i+1].(int64)
		nodes = append(nodes, cluster.Node{ID: id, Sparks: int(n)})
	}
	slices.SortFunc(nodes, func(a, b cluster.Node) int { return strings.Compare(a.ID, b.ID) })
	return nodes, nil
}
