// Package publish is an HTTP endpoint through which other services, cron
// jobs and scripts write to a primus server's clients: a broadcast, a room,
// or sparks by id. It speaks the request format of Primus's omega-supreme
// plugin, so existing Node tooling (primus.forward, plain curl scripts)
// keeps publishing when the server moves to Go. On a cluster, it publishes
// through the cluster, so that any node can take the request.
//
//	h, err := publish.New(publish.Options{
//		Server:       srv,
//		Cluster:      c, // optional: *cluster.Cluster
//		Rooms:        r, // optional: *rooms.Rooms
//		Authenticate: publish.BasicAuth("omega", os.Getenv("PUBLISH_PASSWORD")),
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	mux.Handle(publish.DefaultPath, h) // /primus/omega/supreme, beside mux.Handle("/primus/", srv)
//
// Then, from anywhere that can reach it:
//
//	curl -u omega:$PUBLISH_PASSWORD -X PUT -d '{"msg": {"text": "hello"}}' http://host:8080/primus/omega/supreme
//	→ {"ok":true,"send":42}
//
// Differences from omega-supreme, on purpose: there are no default
// credentials (Authenticate is required); a body that is not a JSON object
// with a msg answers 400 (omega-supreme: 500); msg may be any JSON value
// but null (omega-supreme refuses every falsy one: 0, false, ""); bodies are
// bounded in size and time; "rooms" and "except" (the
// omega-supreme-rooms-middleware fields) are built in.
package publish
