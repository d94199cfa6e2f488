/* ragd-c-query HOST PORT COLLECTION QUESTION [TOP_K]: asks a question, prints the answer and sources.
 * $RAGD_API_KEY is sent as the API key; $RAGD_TLS_CA (a PEM CA file) turns TLS on;
 * $TRACEPARENT (W3C trace context) is sent with the call. */
#include <stdio.h>
#include <stdlib.h>
#include "ragd_client.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT COLLECTION QUESTION [TOP_K]\n", argv[0]);
        return 2;
    }
    ragd_error err;
    ragd_options o = {0};
    o.api_key = getenv("RAGD_API_KEY");
    o.tls_ca = getenv("RAGD_TLS_CA");
    o.traceparent = getenv("TRACEPARENT");
    ragd_client *c = ragd_connect_with(argv[1], atoi(argv[2]), &o, &err);
    if (!c) { fprintf(stderr, "ragd-c-query: %s: %s\n", ragd_status_name(err.code), err.message); return 1; }
    Ragd__V1__QueryRequest req = RAGD__V1__QUERY_REQUEST__INIT;
    req.collection = argv[3];
    req.query = argv[4];
    if (argc > 5) { req.top_k_value_case = RAGD__V1__QUERY_REQUEST__TOP_K_VALUE_TOP_K; req.top_k = (uint32_t)atoi(argv[5]); }
    Ragd__V1__QueryResponse *r = NULL;
    if (ragd_query(c, &req, 10000, &r, &err) != RAGD_OK) {
        fprintf(stderr, "ragd-c-query: %s: %s\n", ragd_status_name(err.code), err.message);
        if (err.retry_after_ms) fprintf(stderr, "ragd-c-query: retry after %u ms\n", err.retry_after_ms);
        ragd_close(c);
        return 1;
    }
    printf("%s\n\n", r->answer);
    for (size_t i = 0; i < r->n_sources; i++)
        printf("[%zu] %s  score %.4f\n", i + 1, r->sources[i]->chunk_id, r->sources[i]->score);
    ragd__v1__query_response__free_unpacked(r, NULL);
    ragd_close(c);
    return 0;
}
