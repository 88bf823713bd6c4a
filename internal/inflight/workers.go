package inflight

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
)

// workers run admitted requests on at most Config.Max long-lived
// goroutines instead of on the goroutine of the caller's connection.
//
// Why: a request's walk through the router, the token cache and the
// transport grows its goroutine's stack to tens of KiB, and Go keeps a
// grown stack until a later garbage collection shrinks it. Served on the
// connection's own goroutine, every keep-alive connection of a burst ends
// up holding such a stack (1,000 connections: about 16-32 MiB) although
// at most Max requests are ever served at once. On a worker, the deep
// stacks are Max at most, reused from one request to the next, and the
// connection's goroutine stays shallow while it waits.
//
// Handing a request over costs two channel operations and allocates
// nothing; the handler sees the same ResponseWriter and Request.
type workers struct {
	mu     sync.Mutex
	idle   []*worker // most recently used last
	closed bool
	made   int // workers started so far
}

type worker struct {
	start chan task
	done  chan any // nil, or what the handler panicked with
}

type task struct {
	h http.Handler
	w http.ResponseWriter
	r *http.Request
}

// serve runs h.ServeHTTP(w, r) on a worker and returns when it is done.
// A panic in the handler is raised again here, on the connection's
// goroutine, where net/http expects it (http.ErrAbortHandler as is).
func (p *workers) serve(h http.Handler, w http.ResponseWriter, r *http.Request) {
	wk := p.get()
	if wk == nil { // closed: serve in place
		h.ServeHTTP(w, r)
		return
	}
	wk.start <- task{h: h, w: w, r: r}
	v := <-wk.done
	if _, ok := v.(goexited); ok {
		// The handler called runtime.Goexit, which ended the worker;
		// end this goroutine the same way, as if it had run here.
		p.lost()
		runtime.Goexit()
	}
	p.put(wk)
	if v != nil {
		panic(v)
	}
}

// goexited is what a worker reports when the handler called
// runtime.Goexit (and the worker is gone).
type goexited struct{}

func (p *workers) lost() {
	p.mu.Lock()
	p.made--
	p.mu.Unlock()
}

func (p *workers) get() *worker {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	if n := len(p.idle); n > 0 {
		wk := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return wk
	}
	p.made++
	p.mu.Unlock()
	// The Limiter's semaphore bounds how many are busy, hence how many
	// are ever made.
	wk := &worker{start: make(chan task), done: make(chan any)}
	go wk.run()
	return wk
}

func (p *workers) put(wk *worker) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		close(wk.start)
		return
	}
	p.idle = append(p.idle, wk)
	p.mu.Unlock()
}

// close ends the idle workers, and every busy one when it is done.
func (p *workers) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, wk := range idle {
		close(wk.start)
	}
}

func (wk *worker) run() {
	for t := range wk.start {
		wk.done <- serveTask(t, wk.done)
	}
}

func serveTask(t task, done chan<- any) (panicked any) {
	returned := false
	defer func() {
		v := recover()
		if v == nil && !returned {
			done <- goexited{} // runtime.Goexit: this goroutine ends
			return
		}
		if v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panicked = v
				return
			}
			panicked = &Panic{Value: v, Stack: debug.Stack()}
		}
	}()
	t.h.ServeHTTP(t.w, t.r)
	returned = true
	return nil
}

// Panic is what a handler run by a Limiter panicked with, raised again on
// the connection's goroutine, with the stack of the goroutine that
// panicked.
type Panic struct {
	Value any
	Stack []byte
}

func (p *Panic) Error() string { return fmt.Sprintf("%v\n\n%s", p.Value, p.Stack) }

// Unwrap returns the value panicked with, if it is an error.
func (p *Panic) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}
