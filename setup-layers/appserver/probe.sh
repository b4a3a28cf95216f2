# appserver, when the fingerprint holds: each active instance runs and answers its health check
# (no file shows it).
repair_instances
