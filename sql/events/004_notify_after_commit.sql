-- Readers are woken from outside the write path. A NOTIFY sent inside the
-- writing transaction (the trigger of 001) takes a global lock at commit that
-- serializes all committing writers; the command service now sends one
-- coalesced NOTIFY bank_events from a connection of its own after its batches
-- commit (common/eventstore/commit_notifier.h). The channel, its empty
-- payload and the reading rule are unchanged: readers never depend on a
-- notification arriving, they read from their checkpoint and also poll.
DROP TRIGGER events_notify_after_insert ON events;
DROP FUNCTION events_notify();
