"""The request pipeline, written once for every client API (gateway/apis/ holds what differs).

    pipeline.py     the stages in order, for one POST
    accept.py       read the headers and the size-capped body
    auth.py         the key becomes a principal (keys.py: digests and their cache)
    route.py        plan: the route for the model, the order its targets are tried in
                    (balance.py within a group, health.py: breakers, load, latency)
    limits.py       admit: every limit checked and reserved in one store call
    relay.py        try the targets until one answers: fallback, retries, breakers
    translate.py    normalize the body for one target, by its dialect's rules
    attempt.py      one request to one target, its answer relayed (deadline.py,
                    disconnect.py, sse.py, tally.py: what a stream relayed)
    account.py      settle: the log line, metrics and usage (recorder.py: usage
                    written off the client's path)

exchange.py is the request as it moves through; errors.py the failures, each with
its status; asgi.py writes them on raw ASGI; tokens.py estimates tokens
where no upstream counted; echo.py says what of a client's text may be repeated.
"""
