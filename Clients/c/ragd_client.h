/* Ragd C client: blocking calls over the Ragd frame protocol (protobuf-c).
 *
 * One ragd_client is one TCP connection used by one thread at a time. Every call
 * returns a ragd_status (the protocol's gRPC status codes); on failure `err`
 * (if not NULL) receives the code and the server's or client's message.
 * Responses are protobuf-c messages: free them with the matching
 * ragd__v1__*__free_unpacked(msg, NULL).
 */
#ifndef RAGD_CLIENT_H
#define RAGD_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "gen/ragd/v1/ragd.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RAGD_OK = 0,
    RAGD_CANCELLED = 1,
    RAGD_UNKNOWN = 2,
    RAGD_INVALID_ARGUMENT = 3,
    RAGD_DEADLINE_EXCEEDED = 4,
    RAGD_NOT_FOUND = 5,
    RAGD_ALREADY_EXISTS = 6,
    RAGD_PERMISSION_DENIED = 7,
    RAGD_RESOURCE_EXHAUSTED = 8,
    RAGD_FAILED_PRECONDITION = 9,
    RAGD_ABORTED = 10,
    RAGD_OUT_OF_RANGE = 11,
    RAGD_UNIMPLEMENTED = 12,
    RAGD_INTERNAL = 13,
    RAGD_UNAVAILABLE = 14,
    RAGD_DATA_LOSS = 15,
    RAGD_UNAUTHENTICATED = 16
} ragd_status;

typedef struct {
    ragd_status code;
    char message[512];
    /* On RESOURCE_EXHAUSTED from a key's rate limit: milliseconds until a retry
     * would be admitted (0 otherwise). */
    uint32_t retry_after_ms;
} ragd_error;

/* Connection options; zero-initialize and set what you need. Strings are
 * copied by ragd_connect_with. */
typedef struct {
    const char *api_key;     /* sent with every call (frame metadata api_key) */
    int tls;                 /* non-zero: TLS (OpenSSL), verifying the server */
    const char *tls_ca;      /* PEM CA file to trust; NULL: the system's; implies tls */
    const char *tls_cert;    /* PEM client certificate and key, for mutual TLS */
    const char *tls_key;
    const char *server_name; /* name to verify; NULL: host (an IP is checked as an IP) */
    const char *traceparent; /* W3C trace context sent with every call; NULL: none (see ragd_set_traceparent) */
} ragd_options;

typedef struct ragd_client ragd_client;

/* Largest frame the client accepts from a server (default 16 MiB). */
#define RAGD_DEFAULT_MAX_FRAME (16u * 1024u * 1024u)

/* The gRPC name of a status code, e.g. "NOT_FOUND". */
const char *ragd_status_name(ragd_status code);

/* Connects; NULL on failure (err says why, code UNAVAILABLE). */
ragd_client *ragd_connect(const char *host, int port, ragd_error *err);
/* Connects with an API key and/or TLS; opts may be NULL. A failed TLS
 * handshake or certificate check is UNAVAILABLE with OpenSSL's reason. */
ragd_client *ragd_connect_with(const char *host, int port, const ragd_options *opts, ragd_error *err);
void ragd_close(ragd_client *client);

/* Sets (NULL or "": clears) the W3C traceparent sent with every later call,
 * e.g. "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01". A server
 * started with --otel-endpoint continues that trace. */
ragd_status ragd_set_traceparent(ragd_client *client, const char *traceparent, ragd_error *err);

/* deadline_ms: 0 = no deadline; otherwise sent to the server and enforced locally. */
ragd_status ragd_query(ragd_client *c, const Ragd__V1__QueryRequest *req, uint32_t deadline_ms,
                       Ragd__V1__QueryResponse **out, ragd_error *err);
ragd_status ragd_index(ragd_client *c, const Ragd__V1__IndexRequest *req, uint32_t deadline_ms,
                       Ragd__V1__IndexResponse **out, ragd_error *err);
ragd_status ragd_delete(ragd_client *c, const Ragd__V1__DeleteRequest *req, uint32_t deadline_ms,
                        Ragd__V1__DeleteResponse **out, ragd_error *err);
ragd_status ragd_stats(ragd_client *c, const Ragd__V1__StatsRequest *req, uint32_t deadline_ms,
                       Ragd__V1__StatsResponse **out, ragd_error *err);
ragd_status ragd_health(ragd_client *c, uint32_t deadline_ms, Ragd__V1__HealthResponse **out, ragd_error *err);

/* Asynchronous jobs. A large index job goes up in parts: the first request has
 * more = 1, the next ones set append_to to the job id (see Protos/README.md). */
ragd_status ragd_submit_job(ragd_client *c, const Ragd__V1__SubmitJobRequest *req, uint32_t deadline_ms,
                            Ragd__V1__SubmitJobResponse **out, ragd_error *err);
ragd_status ragd_get_job(ragd_client *c, const char *job_id, uint32_t deadline_ms,
                         Ragd__V1__GetJobResponse **out, ragd_error *err);
ragd_status ragd_cancel_job(ragd_client *c, const char *job_id, uint32_t deadline_ms,
                            Ragd__V1__CancelJobResponse **out, ragd_error *err);

/* Called once per stream event (sources, tokens, done). Return non-zero to stop:
 * the client then cancels the call and ragd_stream returns RAGD_CANCELLED. The
 * event is freed after the callback returns. */
typedef int (*ragd_stream_callback)(const Ragd__V1__StreamEvent *event, void *user);

ragd_status ragd_stream(ragd_client *c, const Ragd__V1__QueryRequest *req, uint32_t deadline_ms,
                        ragd_stream_callback callback, void *user, ragd_error *err);

/* Lower level: one unary call with a raw payload; *response is malloc'd. */
ragd_status ragd_call(ragd_client *c, const char *method, const uint8_t *payload, size_t payload_len,
                      uint32_t deadline_ms, uint8_t **response, size_t *response_len, ragd_error *err);

#ifdef __cplusplus
}
#endif
#endif
