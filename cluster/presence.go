package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/go-primus/primus"
)

// maxDeltas bounds the registry changes sent in one Update.
const maxDeltas = 1024

// firstRetry is the wait before retrying a failed registry sync; it doubles
// up to the refresh interval.
const firstRetry = 100 * time.Millisecond

// track queues a registry change for a spark of this node. When the queue
// is full the change is dropped and the registry re-synced whole instead.
func (c *Cluster) track(id string, add bool) {
	if c.closed.Load() {
		return
	}
	select {
	case c.deltas <- delta{id: id, add: add}:
	default:
		select {
		case c.dirty <- struct{}{}:
		default:
		}
	}
}

// registryLoop keeps the registry true: a whole Sync at start and every
// Expiry/3 (sooner after a failure), an Update for the changes in between.
func (c *Cluster) registryLoop() {
	defer c.wg.Done()
	interval := c.expiry / 3
	timer := time.NewTimer(0)
	defer timer.Stop()
	retry := firstRetry

	sync := func() error {
		// The snapshot taken now covers every change queued so far.
	drain:
		for {
			select {
			case <-c.deltas:
			default:
				break drain
			}
		}
		var ids []string
		c.srv.ForEach(func(sp *primus.Spark) bool {
			ids = append(ids, sp.ID())
			return true
		})
		ctx, cancel := context.WithTimeout(c.loopCtx, c.timeout)
		err := c.reg.Sync(ctx, c.id, ids, c.expiry)
		cancel()
		if err != nil {
			err = fmt.Errorf("cluster: failed to register the node's %d sparks: %w", len(ids), err)
			c.rep.fail("registry", err, 0)
			timer.Reset(retry)
			retry = min(2*retry, interval)
			return err
		}
		c.rep.ok("registry")
		retry = firstRetry
		timer.Reset(interval)
		return nil
	}

	ops := map[string]bool{}
	for {
		select {
		case d := <-c.deltas:
			clear(ops)
			ops[d.id] = d.add
		more:
			for len(ops) < maxDeltas {
				select {
				case d := <-c.deltas:
					ops[d.id] = d.add
				default:
					break more
				}
			}
			var added, removed []string
			for id, add := range ops {
				if add {
					added = append(added, id)
				} else {
					removed = append(removed, id)
				}
			}
			ctx, cancel := context.WithTimeout(c.loopCtx, c.timeout)
			err := c.reg.Update(ctx, c.id, added, removed, c.expiry)
			cancel()
			if err != nil {
				c.rep.fail("registry", fmt.Errorf("cluster: failed to update the registry: %w", err), 0)
				timer.Reset(retry) // the next sync repairs what was lost
				retry = min(2*retry, interval)
			}
		case <-c.dirty:
			_ = sync()
		case <-timer.C:
			_ = sync()
		case reply := <-c.syncReq:
			reply <- sync()
		case <-c.stop:
			return
		}
	}
}
