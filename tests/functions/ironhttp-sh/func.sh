#!/bin/sh
# A hot function in plain POSIX shell, the IronFunctions way: read an HTTP/1.1 request from
# stdin, use Content-Length to know where its body ends, answer with Content-Length, loop.
cr=$(printf '\r')
while IFS= read -r line; do
    length=0
    method=""
    # The request line is in $line; then the headers, up to an empty line.
    while IFS= read -r header; do
        header=${header%"$cr"}
        [ -z "$header" ] && break
        name=$(printf '%s' "${header%%:*}" | tr 'A-Z' 'a-z')
        value=${header#*: }
        case "$name" in
            content-length) length=$value ;;
            method) method=$value ;;
        esac
    done
    head -c "$length" > /tmp/request-body
    { printf 'Hello %s from shell %s (%s)\n' "$(cat /tmp/request-body)" "$$" "$method"; } > /tmp/response-body
    printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n' \
        "$(wc -c < /tmp/response-body)"
    cat /tmp/response-body
done
