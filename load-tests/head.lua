-- wrk: HEAD requests (redirect answered, no click recorded).
wrk.method = "HEAD"
