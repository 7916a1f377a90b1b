package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reloadOnHangup reloads the broker's users and ACL files on SIGHUP until
// ctx ends. The returned func stops listening and waits for the goroutine.
func reloadOnHangup(ctx context.Context, reload func() error, log *slog.Logger) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	stopLoop := reloadOn(ctx, sig, reload, log)
	return func() {
		signal.Stop(sig)
		stopLoop()
	}
}

// reloadOn calls reload for every value on sig until ctx ends or stop is
// called; a failed reload is logged and changes nothing.
func reloadOn(ctx context.Context, sig <-chan os.Signal, reload func() error, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				if err := reload(); err != nil {
					log.Error("SIGHUP: the security files were not reloaded; the broker keeps the previous ones", "err", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}
