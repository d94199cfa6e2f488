/* Checks the C client's encoding against the golden hex files of Tests/Conformance/golden, and decodes them.
 * usage: ragd-c-golden GOLDEN_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ragd_client.h"

static int failures = 0;

static uint8_t *read_hex(const char *dir, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.hex", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); failures++; return NULL; }
    char hex[8192];
    size_t n = fread(hex, 1, sizeof hex - 1, f);
    fclose(f);
    hex[n] = 0;
    while (n && (hex[n - 1] == '\n' || hex[n - 1] == ' ')) hex[--n] = 0;
    uint8_t *out = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) sscanf(hex + 2 * i, "%2hhx", &out[i]);
    *len = n / 2;
    return out;
}

/* Encodes `f` with its length prefix and compares with the golden file; returns the decoded golden frame. */
static Ragd__V1__Frame *check(const char *dir, const char *name, const Ragd__V1__Frame *f) {
    size_t glen = 0;
    uint8_t *golden = read_hex(dir, name, &glen);
    if (!golden) return NULL;
    size_t len = ragd__v1__frame__get_packed_size(f);
    uint8_t *buf = malloc(4 + len);
    buf[0] = len >> 24; buf[1] = len >> 16; buf[2] = len >> 8; buf[3] = len;
    ragd__v1__frame__pack(f, buf + 4);
    if (glen != 4 + len || memcmp(golden, buf, glen) != 0) { printf("%s: encoding differs from the golden bytes\n", name); failures++; }
    Ragd__V1__Frame *d = glen >= 4 ? ragd__v1__frame__unpack(NULL, glen - 4, golden + 4) : NULL;
    if (!d) { printf("%s: cannot decode the golden bytes\n", name); failures++; }
    else if (d->call_id != f->call_id || d->kind != f->kind || d->status != f->status) { printf("%s: decoded fields differ\n", name); failures++; }
    free(buf);
    free(golden);
    return d;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../../Tests/Conformance/golden";
    Ragd__V1__Frame f;

    ragd__v1__frame__init(&f);
    f.call_id = 1; f.method = "Health"; f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_REQUEST;
    Ragd__V1__Frame *d = check(dir, "health-request", &f);
    if (d) { if (strcmp(d->method, "Health")) { puts("health-request: method"); failures++; } ragd__v1__frame__free_unpacked(d, NULL); }

    /* QueryRequest{kb, "what is SQLITE_BUSY?", top_k 3, keyword, all_of[eq lang en, gte year 2000]} */
    Ragd__V1__Value en = RAGD__V1__VALUE__INIT, y2000 = RAGD__V1__VALUE__INIT;
    en.kind_case = RAGD__V1__VALUE__KIND_STRING_VALUE; en.string_value = "en";
    y2000.kind_case = RAGD__V1__VALUE__KIND_NUMBER_VALUE; y2000.number_value = 2000;
    Ragd__V1__Comparison c1 = RAGD__V1__COMPARISON__INIT, c2 = RAGD__V1__COMPARISON__INIT;
    c1.key = "lang"; c1.op = RAGD__V1__COMPARE_OP__COMPARE_OP_EQ; c1.value = &en;
    c2.key = "year"; c2.op = RAGD__V1__COMPARE_OP__COMPARE_OP_GTE; c2.value = &y2000;
    Ragd__V1__Filter f1 = RAGD__V1__FILTER__INIT, f2 = RAGD__V1__FILTER__INIT, all = RAGD__V1__FILTER__INIT;
    f1.node_case = RAGD__V1__FILTER__NODE_COMPARE; f1.compare = &c1;
    f2.node_case = RAGD__V1__FILTER__NODE_COMPARE; f2.compare = &c2;
    Ragd__V1__Filter *list[] = {&f1, &f2};
    Ragd__V1__FilterList fl = RAGD__V1__FILTER_LIST__INIT;
    fl.n_filters = 2; fl.filters = list;
    all.node_case = RAGD__V1__FILTER__NODE_ALL_OF; all.all_of = &fl;
    Ragd__V1__QueryRequest q = RAGD__V1__QUERY_REQUEST__INIT;
    q.collection = "kb"; q.query = "what is SQLITE_BUSY?";
    q.top_k_value_case = RAGD__V1__QUERY_REQUEST__TOP_K_VALUE_TOP_K; q.top_k = 3;
    q.mode = RAGD__V1__SEARCH_MODE__SEARCH_MODE_KEYWORD; q.filter = &all;
    uint8_t payload[512];
    size_t plen = ragd__v1__query_request__pack(&q, payload);
    Ragd__V1__Metadata md = RAGD__V1__METADATA__INIT;
    md.request_id = "req-1"; md.deadline_ms = 1500;
    ragd__v1__frame__init(&f);
    f.call_id = 42; f.method = "Query"; f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_REQUEST; f.metadata = &md;
    f.payload.data = payload; f.payload.len = plen;
    d = check(dir, "query-request", &f);
    if (d) {
        Ragd__V1__QueryRequest *r = ragd__v1__query_request__unpack(NULL, d->payload.len, d->payload.data);
        if (!r || r->top_k != 3 || strcmp(r->query, "what is SQLITE_BUSY?") || !r->filter || r->filter->all_of->n_filters != 2 ||
            r->filter->all_of->filters[1]->compare->value->number_value != 2000 || d->metadata->deadline_ms != 1500) {
            puts("query-request: decoded request differs"); failures++;
        }
        if (r) ragd__v1__query_request__free_unpacked(r, NULL);
        ragd__v1__frame__free_unpacked(d, NULL);
    }

    Ragd__V1__QueryRequest z = RAGD__V1__QUERY_REQUEST__INIT;
    z.collection = "kb"; z.query = "x"; z.top_k_value_case = RAGD__V1__QUERY_REQUEST__TOP_K_VALUE_TOP_K; z.top_k = 0;
    plen = ragd__v1__query_request__pack(&z, payload);
    ragd__v1__frame__init(&f);
    f.call_id = 2; f.method = "Query"; f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_REQUEST; f.payload.data = payload; f.payload.len = plen;
    d = check(dir, "query-top-k-zero", &f);
    if (d) {
        Ragd__V1__QueryRequest *r = ragd__v1__query_request__unpack(NULL, d->payload.len, d->payload.data);
        if (!r || r->top_k_value_case != RAGD__V1__QUERY_REQUEST__TOP_K_VALUE_TOP_K || r->top_k != 0) { puts("query-top-k-zero: presence lost"); failures++; }
        if (r) ragd__v1__query_request__free_unpacked(r, NULL);
        ragd__v1__frame__free_unpacked(d, NULL);
    }

    ragd__v1__frame__init(&f);
    f.call_id = 42; f.method = "Query"; f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_ERROR;
    f.status = RAGD__V1__STATUS_CODE__STATUS_CODE_NOT_FOUND; f.status_message = "collection \"kb\" does not exist";
    d = check(dir, "error-not-found", &f);
    if (d) ragd__v1__frame__free_unpacked(d, NULL);

    Ragd__V1__StreamEvent ev = RAGD__V1__STREAM_EVENT__INIT;
    ev.event_case = RAGD__V1__STREAM_EVENT__EVENT_TOKEN; ev.token = "Hello ";
    plen = ragd__v1__stream_event__pack(&ev, payload);
    ragd__v1__frame__init(&f);
    f.call_id = 7; f.method = "Stream"; f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_STREAM_MESSAGE; f.payload.data = payload; f.payload.len = plen;
    d = check(dir, "stream-token", &f);
    if (d) ragd__v1__frame__free_unpacked(d, NULL);

    ragd__v1__frame__init(&f);
    f.call_id = 7; f.method = "Stream"; f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_END_OF_STREAM;
    d = check(dir, "end-of-stream", &f);
    if (d) ragd__v1__frame__free_unpacked(d, NULL);

    ragd__v1__frame__init(&f);
    f.call_id = 9; f.kind = RAGD__V1__FRAME_KIND__FRAME_KIND_CANCEL;
    d = check(dir, "cancel", &f);
    if (d) ragd__v1__frame__free_unpacked(d, NULL);

    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
