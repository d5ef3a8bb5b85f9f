package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/go-primus/primus/cluster"
)

// The room directory, with the default namespace "primus":
//
//	primus:dir:nodes                 set of the ids of the nodes with records
//	primus:dir:node:<node>           hash: "" → version, "=<room>" → 1 for each room with members there
//	primus:dir:room:<node>:<room>    set of the node's members of the room
//	primus:dir:of:<node>:<spark>     set of the spark's rooms
//
// each with a PEXPIRE of the cluster's Expiry, renewed by every SyncRooms
// (and, for the keys it touches, UpdateRooms). The node's hash says it is
// alive: the queries, Lua scripts, visit the nodes whose hash exists and
// drop the others from the set of nodes as they go, so a node's memberships
// vanish together when it expires. Each script runs as one command, so a
// query sees a node's records between two of its changes, never in the
// middle of one.

var _ cluster.Directory = (*Backend)(nil)

func (b *Backend) dirPrefix() string { return b.ns + ":dir:" }

// clearNodeRoomsLua deletes the records of the node (p, node, idx set):
// its rooms' member sets, its sparks' room sets, and its index.
const clearNodeRoomsLua = `for _, f in ipairs(redis.call('HKEYS', idx)) do
  if f ~= '' then
    local rk = p .. 'room:' .. node .. ':' .. string.sub(f, 2)
    for _, id in ipairs(redis.call('SMEMBERS', rk)) do
      redis.call('DEL', p .. 'of:' .. node .. ':' .. id)
    end
    redis.call('DEL', rk)
  end
end
redis.call('DEL', idx)
`

// syncRoomsScript replaces the node's records.
//
//	ARGV[1] prefix, [2] node, [3] ttl in ms, [4] version, then for each
//	room: the room, n, and n spark ids.
var syncRoomsScript = goredis.NewScript(`
local p, node, ttl = ARGV[1], ARGV[2], ARGV[3]
local idx = p .. 'node:' .. node
` + clearNodeRoomsLua + `redis.call('HSET', idx, '', ARGV[4])
local i = 5
while i <= #ARGV do
  local room, n = ARGV[i], tonumber(ARGV[i + 1])
  local rk = p .. 'room:' .. node .. ':' .. room
  for j = i + 2, i + 1 + n do
    redis.call('SADD', rk, ARGV[j])
    local ok = p .. 'of:' .. node .. ':' .. ARGV[j]
    redis.call('SADD', ok, room)
    redis.call('PEXPIRE', ok, ttl)
  end
  if n > 0 then
    redis.call('PEXPIRE', rk, ttl)
    redis.call('HSET', idx, '=' .. room, '1')
  end
  i = i + 2 + n
end
redis.call('PEXPIRE', idx, ttl)
redis.call('SADD', p .. 'nodes', node)
return 1
`)

// updateRoomsScript applies changes, unless the node's records have
// expired (it returns 0 then).
//
//	ARGV[1] prefix, [2] node, [3] ttl in ms, [4] version, then for each
//	change: "j" or "l", the room, the spark id.
var updateRoomsScript = goredis.NewScript(`
local p, node, ttl = ARGV[1], ARGV[2], ARGV[3]
local idx = p .. 'node:' .. node
if redis.call('EXISTS', idx) == 0 then return 0 end
for i = 5, #ARGV, 3 do
  local room, id = ARGV[i + 1], ARGV[i + 2]
  local rk = p .. 'room:' .. node .. ':' .. room
  local ok = p .. 'of:' .. node .. ':' .. id
  if ARGV[i] == 'j' then
    redis.call('SADD', rk, id)
    redis.call('SADD', ok, room)
    redis.call('PEXPIRE', rk, ttl)
    redis.call('PEXPIRE', ok, ttl)
    redis.call('HSET', idx, '=' .. room, '1')
  else
    redis.call('SREM', rk, id)
    redis.call('SREM', ok, room)
    if redis.call('EXISTS', rk) == 0 then redis.call('HDEL', idx, '=' .. room) end
  end
end
redis.call('HSET', idx, '', ARGV[4])
redis.call('PEXPIRE', idx, ttl)
return 1
`)

// leaveRoomsScript removes the node's records.
//
//	ARGV[1] prefix, [2] node.
var leaveRoomsScript = goredis.NewScript(`
local p, node = ARGV[1], ARGV[2]
local idx = p .. 'node:' .. node
` + clearNodeRoomsLua + `redis.call('SREM', p .. 'nodes', node)
return 1
`)

// nodeRoomsScript returns the node's version, then for each room: the
// room, n, and its n members.
//
//	ARGV[1] prefix, [2] node.
var nodeRoomsScript = goredis.NewScript(`
local p, node = ARGV[1], ARGV[2]
local idx = p .. 'node:' .. node
local v = redis.call('HGET', idx, '')
if not v then return {} end
local out = {v}
for _, f in ipairs(redis.call('HKEYS', idx)) do
  if f ~= '' then
    local room = string.sub(f, 2)
    local ids = redis.call('SMEMBERS', p .. 'room:' .. node .. ':' .. room)
    out[#out + 1] = room
    out[#out + 1] = tostring(#ids)
    for _, id in ipairs(ids) do out[#out + 1] = id end
  end
end
return out
`)

// queryScript answers a query over the live nodes.
//
//	ARGV[1] prefix, [2] "members", "count", "roomsof" or "rooms", [3] the
//	room or spark.
var queryScript = goredis.NewScript(`
local p, q, arg = ARGV[1], ARGV[2], ARGV[3]
local out, n = {}, 0
for _, node in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
  local idx = p .. 'node:' .. node
  if redis.call('EXISTS', idx) == 0 then
    redis.call('SREM', p .. 'nodes', node)
  elseif q == 'members' or q == 'count' then
    if redis.call('HEXISTS', idx, '=' .. arg) == 1 then
      local rk = p .. 'room:' .. node .. ':' .. arg
      if q == 'count' then
        n = n + redis.call('SCARD', rk)
      else
        for _, id in ipairs(redis.call('SMEMBERS', rk)) do out[#out + 1] = id end
      end
    end
  elseif q == 'roomsof' then
    for _, room in ipairs(redis.call('SMEMBERS', p .. 'of:' .. node .. ':' .. arg)) do out[#out + 1] = room end
  else
    for _, f in ipairs(redis.call('HKEYS', idx)) do
      if f ~= '' then out[#out + 1] = string.sub(f, 2) end
    end
  end
end
if q == 'count' then return n end
return out
`)

// SyncRooms replaces the node's records, in one script.
func (b *Backend) SyncRooms(ctx context.Context, node string, rooms map[string][]string, version string, ttl time.Duration) error {
	args := []any{b.dirPrefix(), node, ttl.Milliseconds(), version}
	for room, ids := range rooms {
		args = append(args, room, len(ids))
		for _, id := range ids {
			args = append(args, id)
		}
	}
	if err := syncRoomsScript.Run(ctx, b.rdb, nil, args...).Err(); err != nil {
		return fmt.Errorf("redis: failed to sync the rooms of node %s: %w", node, err)
	}
	return nil
}

// UpdateRooms applies the changes, in one script.
func (b *Backend) UpdateRooms(ctx context.Context, node string, changes []cluster.RoomChange, version string, ttl time.Duration) error {
	args := make([]any, 0, 4+3*len(changes))
	args = append(args, b.dirPrefix(), node, ttl.Milliseconds(), version)
	for _, ch := range changes {
		op := "l"
		if ch.Join {
			op = "j"
		}
		args = append(args, op, ch.Room, ch.Spark)
	}
	n, err := updateRoomsScript.Run(ctx, b.rdb, nil, args...).Int()
	if err != nil {
		return fmt.Errorf("redis: failed to update the rooms of node %s: %w", node, err)
	}
	if n == 0 {
		return fmt.Errorf("redis: the room records of node %s have expired", node)
	}
	return nil
}

// LeaveRooms removes the node's records, in one script.
func (b *Backend) LeaveRooms(ctx context.Context, node string) error {
	if err := leaveRoomsScript.Run(ctx, b.rdb, nil, b.dirPrefix(), node).Err(); err != nil {
		return fmt.Errorf("redis: failed to remove the rooms of node %s: %w", node, err)
	}
	return nil
}

// NodeRooms reads the node's records, in one script.
func (b *Backend) NodeRooms(ctx context.Context, node string) (map[string][]string, string, error) {
	res, err := nodeRoomsScript.Run(ctx, b.rdb, nil, b.dirPrefix(), node).StringSlice()
	if err != nil {
		return nil, "", fmt.Errorf("redis: failed to read the rooms of node %s: %w", node, err)
	}
	rooms := map[string][]string{}
	if len(res) == 0 {
		return rooms, "", nil
	}
	version, res := res[0], res[1:]
	for len(res) >= 2 {
		n, err := strconv.Atoi(res[1])
		if err != nil || n > len(res)-2 {
			return nil, "", errors.New("redis: malformed answer to a rooms read")
		}
		rooms[res[0]] = append([]string(nil), res[2:2+n]...)
		res = res[2+n:]
	}
	return rooms, version, nil
}

func (b *Backend) query(ctx context.Context, q, arg string) ([]string, error) {
	res, err := queryScript.Run(ctx, b.rdb, nil, b.dirPrefix(), q, arg).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis: failed to read the room directory: %w", err)
	}
	return res, nil
}

// Members lists the room's members on the live nodes.
func (b *Backend) Members(ctx context.Context, room string) ([]string, error) {
	return b.query(ctx, "members", room)
}

// Count counts the room's members on the live nodes.
func (b *Backend) Count(ctx context.Context, room string) (int, error) {
	n, err := queryScript.Run(ctx, b.rdb, nil, b.dirPrefix(), "count", room).Int()
	if err != nil {
		return 0, fmt.Errorf("redis: failed to count the members of a room: %w", err)
	}
	return n, nil
}

// RoomsOf lists the spark's rooms on the live nodes.
func (b *Backend) RoomsOf(ctx context.Context, spark string) ([]string, error) {
	return b.query(ctx, "roomsof", spark)
}

// Rooms lists the rooms with members on the live nodes (a room may come
// once per node).
func (b *Backend) Rooms(ctx context.Context) ([]string, error) {
	return b.query(ctx, "rooms", "")
}
