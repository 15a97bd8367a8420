package events

import "fmt"

// Event is a bucket lifecycle event: a [Created] or an [Exited]. The set is
// closed; a type switch over those two is exhaustive.
type Event interface {
	// Sequence is the number the Manager gave the event when it was
	// published: 1 for the first, then one more for each. It is 0 on an event
	// that was never published.
	Sequence() uint64
	// BucketName is the name of the bucket the event is about.
	BucketName() string
	// BucketID identifies the bucket instance: a name that is deleted and
	// created again gets a new ID.
	BucketID() uint64

	stamp(seq uint64) Event
}

// Created is published once per bucket, after its name is visible through
// the registry's Lookup.
type Created struct {
	Seq    uint64 // set by the Manager at publish time
	Bucket string // the bucket's name
	ID     uint64 // the bucket instance
}

// Exited is published once per bucket end, after the registry has forgotten
// the name: a subscriber that receives it and then looks the name up finds
// nothing (or a newer instance, with another ID).
type Exited struct {
	Seq    uint64 // set by the Manager at publish time
	Bucket string // the bucket's name
	ID     uint64 // the bucket instance, as in its Created
	// Reason says why the bucket ended: nil for a normal stop (Delete), the
	// error it was stopped with, a *bucket.PanicError (with the stack) when
	// it crashed, or the context's error when the tree was shut down
	// (context.DeadlineExceeded when a deadline stopped it).
	Reason error
}

// Sequence implements [Event].
func (e Created) Sequence() uint64 { return e.Seq }

// BucketName implements [Event].
func (e Created) BucketName() string { return e.Bucket }

// BucketID implements [Event].
func (e Created) BucketID() uint64 { return e.ID }

func (e Created) stamp(seq uint64) Event { e.Seq = seq; return e }

// String formats the event for logs.
func (e Created) String() string {
	return fmt.Sprintf("#%d created %q (id %d)", e.Seq, e.Bucket, e.ID)
}

// Sequence implements [Event].
func (e Exited) Sequence() uint64 { return e.Seq }

// BucketName implements [Event].
func (e Exited) BucketName() string { return e.Bucket }

// BucketID implements [Event].
func (e Exited) BucketID() uint64 { return e.ID }

func (e Exited) stamp(seq uint64) Event { e.Seq = seq; return e }

// String formats the event for logs.
func (e Exited) String() string {
	reason := "normal"
	if e.Reason != nil {
		reason = e.Reason.Error()
	}
	return fmt.Sprintf("#%d exited %q (id %d): %s", e.Seq, e.Bucket, e.ID, reason)
}
