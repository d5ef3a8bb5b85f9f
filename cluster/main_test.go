package cluster

import (
	"log/slog"
	"testing"

	"github.com/go-primus/primus/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
