package plugin

import "runtime/debug"

// PanicHandler is implemented by the core's sparks and clients: HandlePanic
// ends the connection because code run for it panicked (status 1011 and a
// reason the peer sees), and reports the panic and its stack to the logger
// and the error handlers, exactly as a panic in one of the core's own
// handlers is. It may panic again when the application asked to crash on
// panics.
type PanicHandler interface {
	HandlePanic(value any, stack []byte)
}

// Recover is for plugins that run user code outside the connection's
// reading goroutine (a timer's callback, say), where the core's own recovery
// does not reach. Deferred there, it turns a panic into the end of conn (a
// Spark or a Client), reported as the core reports one:
//
//	go func() {
//		defer plugin.Recover(spark)
//		callback(result)
//	}()
//
// When conn does not implement PanicHandler, the panic goes on.
func Recover(conn any) {
	v := recover()
	if v == nil {
		return
	}
	ph, ok := conn.(PanicHandler)
	if !ok {
		panic(v)
	}
	ph.HandlePanic(v, debug.Stack())
}
