package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReloadOnSignal(t *testing.T) {
	sig := make(chan os.Signal)
	var calls atomic.Int32
	stop := reloadOn(context.Background(), sig, func() error {
		if calls.Add(1) == 1 {
			return errors.New("bad ACL file")
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	sig <- syscall.SIGHUP // a failed reload does not end the loop
	sig <- syscall.SIGHUP
	require.Eventually(t, func() bool { return calls.Load() == 2 }, 10*time.Second, time.Millisecond)
	stop()
}
