"""Traffic to the EIP: the prober, its samples, failover analysis, the dashboard's traffic
model and the scripted drills."""
