"""The sinkhole: HTTP and DNS listeners, signature rules, and the durable spool."""
