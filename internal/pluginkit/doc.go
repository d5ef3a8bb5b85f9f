// Package pluginkit holds the building blocks shared by the bundled plugins
// (emitter, multiplex, substream): splitting a received message into the
// parts of a plugin packet with any parser, embedding already-encoded values
// in a packet, and copy-on-write handler lists.
//
// Like the plugins, it depends on packages parser and plugin only, never on
// the core.
package pluginkit
