#include "ragd_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct ragd_client {
    int fd;
    uint64_t next_call_id;
    uint32_t max_frame;
    char *api_key;
    char *traceparent;
    SSL_CTX *ssl_ctx;
    SSL *ssl;
};

static const char *names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *ragd_status_name(ragd_status code) {
    return (code >= 0 && code <= 16) ? names[code] : "UNKNOWN";
}

static ragd_status fail(ragd_error *err, ragd_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->retry_after_ms = 0;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ragd_client *ragd_connect(const char *host, int port, ragd_error *err) {
    return ragd_connect_with(host, port, NULL, err);
}

/* OpenSSL's most recent error as text (or a fallback). */
static const char *ssl_reason(char *buf, size_t n, const char *fallback) {
    unsigned long e = ERR_get_error();
    if (!e) return fallback;
    ERR_error_string_n(e, buf, n);
    return buf;
}

/* TLS over the connected socket: verify the server's chain and name (or IP). */
static ragd_status start_tls(ragd_client *c, const char *host, const ragd_options *o, ragd_error *err) {
    char why[256];
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ssl_ctx) return fail(err, RAGD_INTERNAL, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int loaded = o->tls_ca ? SSL_CTX_load_verify_locations(c->ssl_ctx, o->tls_ca, NULL) : SSL_CTX_set_default_verify_paths(c->ssl_ctx);
    if (loaded != 1) return fail(err, RAGD_INVALID_ARGUMENT, "cannot load CA %s: %s", o->tls_ca ? o->tls_ca : "(system)", ssl_reason(why, sizeof why, "?"));
    if (o->tls_cert || o->tls_key) {
        if (!o->tls_cert || !o->tls_key) return fail(err, RAGD_INVALID_ARGUMENT, "a client certificate needs both tls_cert and tls_key");
        if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, o->tls_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(c->ssl_ctx, o->tls_key, SSL_FILETYPE_PEM) != 1)
            return fail(err, RAGD_INVALID_ARGUMENT, "cannot load client certificate: %s", ssl_reason(why, sizeof why, "?"));
    }
    c->ssl = SSL_new(c->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) return fail(err, RAGD_INTERNAL, "cannot set up TLS");
    const char *name = o->server_name ? o->server_name : host;
    unsigned char ip[16];
    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name);
    } else {
        SSL_set_tlsext_host_name(c->ssl, name);
        SSL_set1_host(c->ssl, name);
    }
    /* A server that never answers the handshake must not block forever. */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = SSL_connect(c->ssl);
    struct timeval none = {0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    if (rc != 1) {
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK) return fail(err, RAGD_UNAVAILABLE, "TLS: the server's certificate failed verification: %s", X509_verify_cert_error_string(v));
        return fail(err, RAGD_UNAVAILABLE, "TLS handshake failed: %s", ssl_reason(why, sizeof why, "the server closed the connection"));
    }
    return RAGD_OK;
}

ragd_client *ragd_connect_with(const char *host, int port, const ragd_options *opts, ragd_error *err) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        fail(err, RAGD_UNAVAILABLE, "cannot resolve %s: %s", host, gai_strerror(rc));
        return NULL;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fail(err, RAGD_UNAVAILABLE, "cannot connect to ragd at %s:%d: %s", host, port, strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ragd_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        fail(err, RAGD_INTERNAL, "out of memory");
        return NULL;
    }
    c->fd = fd;
    c->next_call_id = 1;
    c->max_frame = RAGD_DEFAULT_MAX_FRAME;
    if (opts && opts->api_key && *opts->api_key) c->api_key = strdup(opts->api_key);
    if (opts && opts->traceparent && *opts->traceparent) c->traceparent = strdup(opts->traceparent);
    if (opts && (opts->tls || opts->tls_ca || opts->tls_cert) && start_tls(c, host, opts, err) != RAGD_OK) {
        ragd_close(c);
        return NULL;
    }
    return c;
}

static void drop_connection(ragd_client *c) {
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

void ragd_close(ragd_client *c) {
    if (!c) return;
    if (c->ssl && c->fd >= 0) SSL_shutdown(c->ssl);
    drop_connection(c);
    if (c->ssl_ctx) SSL_CTX_free(c->ssl_ctx);
    free(c->api_key);
    free(c->traceparent);
    free(c);
}

/* One send or receive, through TLS when it is on; < 0 with errno set on failure. */
static ssize_t io_send(ragd_client *c, const uint8_t *buf, size_t len) {
    if (!c->ssl) return send(c->fd, buf, len, MSG_NOSIGNAL);
    int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n <= 0 && errno == 0) errno = EPIPE;
    return n;
}

static ssize_t io_recv(ragd_client *c, uint8_t *buf, size_t len) {
    if (!c->ssl) return recv(c->fd, buf, len, 0);
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n <= 0) {
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            errno = EAGAIN;
            return -1;
        }
        return 0;  /* closed or broken: the connection is lost */
    }
    return n;
}

static ragd_status send_all(ragd_client *c, const uint8_t *buf, size_t len, ragd_error *err) {
    while (len > 0) {
        ssize_t n = io_send(c, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            drop_connection(c);
            return fail(err, RAGD_UNAVAILABLE, "cannot send to ragd: %s", strerror(errno));
        }
        buf += n;
        len -= (size_t)n;
    }
    return RAGD_OK;
}

/* Reads exactly len bytes before the deadline (0 = none). */
static ragd_status recv_all(ragd_client *c, uint8_t *buf, size_t len, int64_t deadline, ragd_error *err) {
    while (len > 0) {
        int timeout = -1;
        if (deadline) {
            int64_t left = deadline - now_ms();
            if (left <= 0) return fail(err, RAGD_DEADLINE_EXCEEDED, "no answer from ragd within the deadline");
            timeout = (int)left;
        }
        /* Bytes OpenSSL already decrypted do not show on the socket. */
        if (!c->ssl || SSL_pending(c->ssl) == 0) {
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            int r = poll(&p, 1, timeout);
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) return fail(err, RAGD_DEADLINE_EXCEEDED, "no answer from ragd within the deadline");
        }
        ssize_t n = io_recv(c, buf, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            drop_connection(c);
            return fail(err, RAGD_UNAVAILABLE, "connection to the server was lost");
        }
        buf += n;
        len -= (size_t)n;
    }
    return RAGD_OK;
}

/* Reads one frame; *out must be freed with ragd__v1__frame__free_unpacked. */
static ragd_status read_frame(ragd_client *c, int64_t deadline, Ragd__V1__Frame **out, ragd_error *err) {
    uint8_t header[4];
    ragd_status s = recv_all(c, header, 4, deadline, err);
    if (s != RAGD_OK) return s;
    uint32_t len = ((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) | ((uint32_t)header[2] << 8) | header[3];
    if (len > c->max_frame) {
        drop_connection(c);
        return fail(err, RAGD_INTERNAL, "server sent a frame of %u bytes, over the %u-byte limit", len, c->max_frame);
    }
    uint8_t *body = malloc(len ? len : 1);
    if (!body) return fail(err, RAGD_INTERNAL, "out of memory");
    s = recv_all(c, body, len, deadline, err);
    if (s != RAGD_OK) {
        free(body);
        if (s == RAGD_DEADLINE_EXCEEDED) drop_connection(c);  /* mid-frame: the stream is out of step */
        return s;
    }
    *out = ragd__v1__frame__unpack(NULL, len, body);
    free(body);
    if (!*out) {
        drop_connection(c);
        return fail(err, RAGD_INTERNAL, "server sent a frame that is not valid protobuf");
    }
    return RAGD_OK;
}

static ragd_status send_frame(ragd_client *c, const Ragd__V1__Frame *f, ragd_error *err) {
    size_t len = ragd__v1__frame__get_packed_size(f);
    if (len > c->max_frame) return fail(err, RAGD_RESOURCE_EXHAUSTED, "request of %zu bytes exceeds the frame limit", len);
    uint8_t *buf = malloc(4 + len);
    if (!buf) return fail(err, RAGD_INTERNAL, "out of memory");
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    ragd__v1__frame__pack(f, buf + 4);
    ragd_status s = send_all(c, buf, 4 + len, err);
    free(buf);
    return s;
}

/* Starts a call; returns its id in *id. */
static ragd_status start_call(ragd_client *c, const char *method, const uint8_t *payload, size_t payload_len,
                              uint32_t deadline_ms, uint64_t *id, ragd_error *err) {
    if (c->fd < 0) return fail(err, RAGD_UNAVAILABLE, "not connected (the connection was lost; reconnect)");
    Ragd__V1__Frame f = RAGD__V1__FRAME__INIT;
    Ragd__V1__Metadata md = RAGD__V1__METADATA__INIT;
    f.call_id = *id = c->next_call_id++;
    f.method = (char *)method;
    f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    f.payload.data = (uint8_t *)payload;
    f.payload.len = payload_len;
    md.deadline_ms = deadline_ms;
    if (c->api_key) md.api_key = c->api_key;
    if (c->traceparent) md.traceparent = c->traceparent;
    f.metadata = &md;
    return send_frame(c, &f, err);
}

static void send_cancel(ragd_client *c, uint64_t id) {
    Ragd__V1__Frame f = RAGD__V1__FRAME__INIT;
    f.call_id = id;
    f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_CANCEL;
    send_frame(c, &f, NULL);
}

/* The client waits a little past the deadline so the server's own answer wins. */
static int64_t local_deadline(uint32_t deadline_ms) {
    return deadline_ms ? now_ms() + deadline_ms + 250 : 0;
}

/* Reads frames until one for `id` (or a connection-level error) arrives. */
static ragd_status next_frame_for(ragd_client *c, uint64_t id, int64_t deadline, Ragd__V1__Frame **out, ragd_error *err) {
    for (;;) {
        Ragd__V1__Frame *f = NULL;
        ragd_status s = read_frame(c, deadline, &f, err);
        if (s != RAGD_OK) return s;
        if (f->call_id == id || (f->call_id == 0 && f->kind == RAGD__V1__FRAME_KIND__FRAME_KIND_ERROR)) {
            if (f->kind == RAGD__V1__FRAME_KIND__FRAME_KIND_ERROR) {
                ragd_status code = (f->status >= 0 && f->status <= 16) ? (ragd_status)f->status : RAGD_UNKNOWN;
                fail(err, code, "%s", f->status_message ? f->status_message : "");
                if (err && f->metadata) err->retry_after_ms = (uint32_t)(f->metadata->retry_after_ms > UINT32_MAX ? UINT32_MAX : f->metadata->retry_after_ms);
                if (f->call_id == 0 && code == RAGD_RESOURCE_EXHAUSTED) drop_connection(c);
                ragd__v1__frame__free_unpacked(f, NULL);
                return code;
            }
            *out = f;
            return RAGD_OK;
        }
        ragd__v1__frame__free_unpacked(f, NULL);  /* a late frame of an abandoned call */
    }
}

ragd_status ragd_call(ragd_client *c, const char *method, const uint8_t *payload, size_t payload_len,
                      uint32_t deadline_ms, uint8_t **response, size_t *response_len, ragd_error *err) {
    uint64_t id;
    ragd_status s = start_call(c, method, payload, payload_len, deadline_ms, &id, err);
    if (s != RAGD_OK) return s;
    Ragd__V1__Frame *f = NULL;
    s = next_frame_for(c, id, local_deadline(deadline_ms), &f, err);
    if (s != RAGD_OK) return s;
    if (f->kind != RAGD__V1__FRAME_KIND__FRAME_KIND_RESPONSE) {
        ragd__v1__frame__free_unpacked(f, NULL);
        return fail(err, RAGD_INTERNAL, "expected a RESPONSE frame");
    }
    *response_len = f->payload.len;
    *response = malloc(f->payload.len ? f->payload.len : 1);
    if (!*response) {
        ragd__v1__frame__free_unpacked(f, NULL);
        return fail(err, RAGD_INTERNAL, "out of memory");
    }
    if (f->payload.len) memcpy(*response, f->payload.data, f->payload.len);
    ragd__v1__frame__free_unpacked(f, NULL);
    return RAGD_OK;
}

/* Packs `msg`, calls `method`, unpacks the reply with `unpack`. */
#define RAGD_UNARY(c, method, req, pack_size, pack, unpack, deadline_ms, out, err)                     \
    do {                                                                                               \
        size_t len_ = pack_size(req);                                                                  \
        uint8_t *buf_ = malloc(len_ ? len_ : 1);                                                       \
        if (!buf_) return fail(err, RAGD_INTERNAL, "out of memory");                                  \
        pack(req, buf_);                                                                               \
        uint8_t *resp_ = NULL;                                                                         \
        size_t resp_len_ = 0;                                                                          \
        ragd_status s_ = ragd_call(c, method, buf_, len_, deadline_ms, &resp_, &resp_len_, err);      \
        free(buf_);                                                                                    \
        if (s_ != RAGD_OK) return s_;                                                                  \
        *(out) = unpack(NULL, resp_len_, resp_);                                                       \
        free(resp_);                                                                                   \
        if (!*(out)) return fail(err, RAGD_INTERNAL, "server sent an invalid %s response", method);   \
        return RAGD_OK;                                                                                \
    } while (0)

ragd_status ragd_query(ragd_client *c, const Ragd__V1__QueryRequest *req, uint32_t deadline_ms,
                       Ragd__V1__QueryResponse **out, ragd_error *err) {
    RAGD_UNARY(c, "Query", req, ragd__v1__query_request__get_packed_size, ragd__v1__query_request__pack,
               ragd__v1__query_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_index(ragd_client *c, const Ragd__V1__IndexRequest *req, uint32_t deadline_ms,
                       Ragd__V1__IndexResponse **out, ragd_error *err) {
    RAGD_UNARY(c, "Index", req, ragd__v1__index_request__get_packed_size, ragd__v1__index_request__pack,
               ragd__v1__index_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_delete(ragd_client *c, const Ragd__V1__DeleteRequest *req, uint32_t deadline_ms,
                        Ragd__V1__DeleteResponse **out, ragd_error *err) {
    RAGD_UNARY(c, "Delete", req, ragd__v1__delete_request__get_packed_size, ragd__v1__delete_request__pack,
               ragd__v1__delete_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_stats(ragd_client *c, const Ragd__V1__StatsRequest *req, uint32_t deadline_ms,
                       Ragd__V1__StatsResponse **out, ragd_error *err) {
    RAGD_UNARY(c, "Stats", req, ragd__v1__stats_request__get_packed_size, ragd__v1__stats_request__pack,
               ragd__v1__stats_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_health(ragd_client *c, uint32_t deadline_ms, Ragd__V1__HealthResponse **out, ragd_error *err) {
    Ragd__V1__HealthRequest req = RAGD__V1__HEALTH_REQUEST__INIT;
    RAGD_UNARY(c, "Health", &req, ragd__v1__health_request__get_packed_size, ragd__v1__health_request__pack,
               ragd__v1__health_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_submit_job(ragd_client *c, const Ragd__V1__SubmitJobRequest *req, uint32_t deadline_ms,
                            Ragd__V1__SubmitJobResponse **out, ragd_error *err) {
    RAGD_UNARY(c, "SubmitJob", req, ragd__v1__submit_job_request__get_packed_size, ragd__v1__submit_job_request__pack,
               ragd__v1__submit_job_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_get_job(ragd_client *c, const char *job_id, uint32_t deadline_ms,
                         Ragd__V1__GetJobResponse **out, ragd_error *err) {
    Ragd__V1__GetJobRequest req = RAGD__V1__GET_JOB_REQUEST__INIT;
    req.id = (char *)job_id;
    RAGD_UNARY(c, "GetJob", &req, ragd__v1__get_job_request__get_packed_size, ragd__v1__get_job_request__pack,
               ragd__v1__get_job_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_cancel_job(ragd_client *c, const char *job_id, uint32_t deadline_ms,
                            Ragd__V1__CancelJobResponse **out, ragd_error *err) {
    Ragd__V1__CancelJobRequest req = RAGD__V1__CANCEL_JOB_REQUEST__INIT;
    req.id = (char *)job_id;
    RAGD_UNARY(c, "CancelJob", &req, ragd__v1__cancel_job_request__get_packed_size, ragd__v1__cancel_job_request__pack,
               ragd__v1__cancel_job_response__unpack, deadline_ms, out, err);
}

ragd_status ragd_stream(ragd_client *c, const Ragd__V1__QueryRequest *req, uint32_t deadline_ms,
                        ragd_stream_callback callback, void *user, ragd_error *err) {
    size_t len = ragd__v1__query_request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return fail(err, RAGD_INTERNAL, "out of memory");
    ragd__v1__query_request__pack(req, buf);
    uint64_t id;
    ragd_status s = start_call(c, "Stream", buf, len, deadline_ms, &id, err);
    free(buf);
    if (s != RAGD_OK) return s;
    int64_t deadline = local_deadline(deadline_ms);
    for (;;) {
        Ragd__V1__Frame *f = NULL;
        s = next_frame_for(c, id, deadline, &f, err);
        if (s != RAGD_OK) return s;
        if (f->kind == RAGD__V1__FRAME_KIND__FRAME_KIND_END_OF_STREAM) {
            ragd__v1__frame__free_unpacked(f, NULL);
            return RAGD_OK;
        }
        if (f->kind != RAGD__V1__FRAME_KIND__FRAME_KIND_STREAM_MESSAGE) {
            ragd__v1__frame__free_unpacked(f, NULL);
            return fail(err, RAGD_INTERNAL, "unexpected frame kind %d in a stream", (int)f->kind);
        }
        Ragd__V1__StreamEvent *e = ragd__v1__stream_event__unpack(NULL, f->payload.len, f->payload.data);
        ragd__v1__frame__free_unpacked(f, NULL);
        if (!e) return fail(err, RAGD_INTERNAL, "server sent an invalid StreamEvent");
        int stop = callback(e, user);
        ragd__v1__stream_event__free_unpacked(e, NULL);
        if (stop) {
            send_cancel(c, id);
            return fail(err, RAGD_CANCELLED, "stream stopped by the caller");
        }
    }
}

ragd_status ragd_set_traceparent(ragd_client *c, const char *traceparent, ragd_error *err) {
    char *copy = NULL;
    if (traceparent && *traceparent) {
        if (strlen(traceparent) > 256) return fail(err, RAGD_INVALID_ARGUMENT, "traceparent is longer than 256 bytes");
        if (!(copy = strdup(traceparent))) return fail(err, RAGD_INTERNAL, "out of memory");
    }
    free(c->traceparent);
    c->traceparent = copy;
    return RAGD_OK;
}
