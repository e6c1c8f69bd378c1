-- One append function. 005 added append_commands with ev_after (the event
-- each append follows) beside 003's, which it kept for instances of the
-- version before 005 during a rolling upgrade. Every release since 005 calls
-- only the twelve-argument form, so the eleven-argument one goes: the
-- function of 005 is the one definition of an append. A rolling upgrade from
-- a release older than 005 must pass through a release between 005 and this
-- one (or stop the older instances first): their appends would fail here
-- with "function append_commands(...) does not exist", and nothing would be
-- written.
DROP FUNCTION IF EXISTS append_commands(
  integer[], uuid[], uuid[], bigint[], text[], integer[], jsonb[], jsonb[],
  text[], text[], bytea[]);
