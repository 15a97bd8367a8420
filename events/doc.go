// Package events is kv's event manager: the KV.EventManager (a GenEvent) of
// the seed, rebuilt on github.com/asaskevich/EventBus.
//
// The rest of kv sees only this package: two typed events, [Created] and
// [Exited], a [Manager.Publish] that never blocks and never panics, and
// [Subscription] handles with bounded mailboxes.
//
// # Delivery
//
// Each subscriber has its own goroutine and its own bounded mailbox. Publish
// copies the event into every mailbox without waiting: a subscriber whose
// mailbox is full loses that event, and the loss is counted
// ([Subscription.Dropped], [Stats.Dropped]). A subscriber sees events in
// publish order, each stamped with the manager's sequence number, so a gap in
// the numbers shows exactly what it lost. A subscriber whose handler panics is
// removed, as gen_event removes a crashing handler; [Subscription.Err] reports
// the panic and the manager logs it. So is one whose handler calls
// runtime.Goexit (t.FailNow in a test's handler), with [ErrHandlerExited].
//
// # EventBus
//
// EventBus runs synchronous handlers under one bus-wide lock and panics on
// misuse, so the manager registers exactly one handler, with one fixed
// signature, once, and never unsubscribes it; that handler only stamps the
// event and fans it out. Nothing else in kv touches EventBus.
//
// # Lifetime
//
// A Manager is a suture.Service. When its context ends it waits until every
// [Manager.Hold] has been released (the registry holds the manager until it
// has published the Exited of every bucket stopped with the tree), then closes
// every subscription: pending events are still delivered, then
// [Subscription.Done] is closed. A Manager is single-use, like a
// suture.Supervisor: build a new one for every tree.
package events
