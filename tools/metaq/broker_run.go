package main

import (
	"context"
	"errors"
)

// runBroker is wired to the config loader once broker/config lands.
func runBroker(ctx context.Context, g *globals, configPath string) error {
	return errors.New("broker: not wired yet")
}
