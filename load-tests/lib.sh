# shellcheck shell=bash
# Shared by the load-test scripts (sourced): waiting for a server and the API
# calls that set a scenario up. ADMIN is the admin token the servers were given.

wait_port() { # host:port
    for _ in $(seq 1 100); do (echo >"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done
    echo "load-tests: nothing listening on $1" >&2; exit 1
}
wait_ready() { # url
    for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done
    echo "load-tests: $1 never answered" >&2; exit 1
}
create_account() { # relurl-addr; prints the API key
    curl -sf -X POST "http://$1/v1/accounts" -H "Authorization: Bearer $ADMIN" \
        -d '{"name":"load"}' | sed -E 's/.*"api_key":"([^"]+)".*/\1/'
}
create_link() { # relurl-addr key: the link /load
    curl -sf -X POST "http://$1/v1/links" -H "Authorization: Bearer $2" \
        -d '{"destination":"https://example.com/landing","code":"load"}' >/dev/null
}
create_endpoint() { # relurl-addr key url: link.clicked, rate limit out of the way
    curl -sf -X POST "http://$1/v1/webhooks" -H "Authorization: Bearer $2" \
        -d "{\"url\":\"$3\",\"events\":[\"link.clicked\"],\"rate_limit_per_sec\":100000}" >/dev/null
}
