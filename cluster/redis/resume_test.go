package redis_test

import (
	"testing"

	"github.com/go-primus/primus/cluster/internal/clustertest"
)

func TestRecoveryAcrossNodes(t *testing.T) {
	t.Parallel()
	clients := 300
	if testing.Short() {
		clients = 30
	}
	clustertest.TestRecoveryAcrossNodes(t, newEnv, clients)
}
