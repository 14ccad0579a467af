package main

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
)

// dialWorkers is how many sessions the idle and storm runs dial (and
// join) at a time, as the live room's setup does.
const dialWorkers = 64

// forEach calls fn(i) for i in [from, to) from dialWorkers goroutines
// and returns once every call has.
func forEach(from, to int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range dialWorkers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// dialIdle connects one session of user to url: no events wanted, no
// reconnects.
func dialIdle(ctx context.Context, url, user string) (*client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return client.Dial(dctx, client.Options{URLs: []string{url}, UserID: user, OnEvent: func(client.Event) {}, NoReconnect: true})
}

// closeAll closes the clients that connected, many at a time.
func closeAll(clients []*client.Client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range clients {
		if c != nil {
			sem <- struct{}{}
			wg.Go(func() { defer func() { <-sem }(); c.Close() })
		}
	}
	wg.Wait()
}
