-- The trace an activity task belongs to: the W3C traceparent of its instance's orchestration
-- span, whose sampled flag is the trace's sampling decision. The host that claims the row (it
-- may be another host than the instance's) puts the activity's spans in that trace, or makes
-- none when the trace is not sampled. NULL: rows written before this column (their host
-- derives the trace from the instance id).
ALTER TABLE activity_tasks ADD COLUMN trace_parent TEXT;
