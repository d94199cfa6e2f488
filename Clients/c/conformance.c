/* Runs Tests/Conformance/scenarios.tsv with the C client; prints one JSON object per step.
 * usage: ragd-c-conformance SCENARIOS HOST PORT SILENT_PORT HANGUP_PORT COLLECTION */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ragd_client.h"

#define MAX_FIELDS 10
#define MAX_DOCS 64
#define MAX_CMP 16

static void json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p == '\n') printf("\\n");
        else if (*p == '\t') printf("\\t");
        else if (*p == '\r') printf("\\r");
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static int split(char *line, char **fields) {
    int n = 0;
    char *p = line;
    while (n < MAX_FIELDS) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return n;
}

/* "s:text", "n:12", "b:true" -> a newly allocated Value. */
static Ragd__V1__Value *typed(const char *v) {
    Ragd__V1__Value *out = malloc(sizeof *out);
    ragd__v1__value__init(out);
    if (v[0] == 'n') { out->kind_case = RAGD__V1__VALUE__KIND_NUMBER_VALUE; out->number_value = strtod(v + 2, NULL); }
    else if (v[0] == 'b') { out->kind_case = RAGD__V1__VALUE__KIND_BOOL_VALUE; out->bool_value = strcmp(v + 2, "true") == 0; }
    else { out->kind_case = RAGD__V1__VALUE__KIND_STRING_VALUE; out->string_value = strdup(v + 2); }
    return out;
}

static void free_value(Ragd__V1__Value *v) {
    if (v->kind_case == RAGD__V1__VALUE__KIND_STRING_VALUE) free(v->string_value);
    free(v);
}

/* Filters built here own their memory; free_filter releases it. */
static Ragd__V1__Filter *comparison(char *c) {
    int neg = c[0] == '!';
    if (neg) c++;
    Ragd__V1__Comparison *cmp = calloc(1, sizeof *cmp);
    ragd__v1__comparison__init(cmp);
    if (c[0] == '?') {
        cmp->key = strdup(c + 1);
        cmp->op = RAGD__V1__COMPARE_OP__COMPARE_OP_EXISTS;
    } else if (strchr(c, '@')) {
        char *at = strchr(c, '@');
        *at = 0;
        cmp->key = strdup(c);
        cmp->op = RAGD__V1__COMPARE_OP__COMPARE_OP_IN;
        cmp->values = calloc(MAX_CMP, sizeof *cmp->values);
        char *save = NULL;
        for (char *v = strtok_r(at + 1, ",", &save); v && cmp->n_values < MAX_CMP; v = strtok_r(NULL, ",", &save))
            cmp->values[cmp->n_values++] = typed(v);
    } else {
        static const struct { const char *op; Ragd__V1__CompareOp code; } ops[] = {
            {"!=", RAGD__V1__COMPARE_OP__COMPARE_OP_NE}, {"<=", RAGD__V1__COMPARE_OP__COMPARE_OP_LTE},
            {">=", RAGD__V1__COMPARE_OP__COMPARE_OP_GTE}, {"=", RAGD__V1__COMPARE_OP__COMPARE_OP_EQ},
            {"<", RAGD__V1__COMPARE_OP__COMPARE_OP_LT}, {">", RAGD__V1__COMPARE_OP__COMPARE_OP_GT},
        };
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            char *at = strstr(c, ops[i].op);
            if (!at) continue;
            *at = 0;
            cmp->key = strdup(c);
            cmp->op = ops[i].code;
            cmp->value = typed(at + strlen(ops[i].op));
            break;
        }
    }
    Ragd__V1__Filter *f = malloc(sizeof *f);
    ragd__v1__filter__init(f);
    f->node_case = RAGD__V1__FILTER__NODE_COMPARE;
    f->compare = cmp;
    if (!neg) return f;
    Ragd__V1__Filter *n = malloc(sizeof *n);
    ragd__v1__filter__init(n);
    n->node_case = RAGD__V1__FILTER__NODE_NEGATION;
    n->negation = f;
    return n;
}

static Ragd__V1__Filter *parse_filter(char *text) {
    if (strcmp(text, "-") == 0) return NULL;
    Ragd__V1__Filter *parts[MAX_CMP];
    size_t n = 0;
    char *save = NULL;
    for (char *c = strtok_r(text, "&", &save); c && n < MAX_CMP; c = strtok_r(NULL, "&", &save)) parts[n++] = comparison(c);
    if (n == 1) return parts[0];
    Ragd__V1__Filter *all = malloc(sizeof *all);
    ragd__v1__filter__init(all);
    all->node_case = RAGD__V1__FILTER__NODE_ALL_OF;
    all->all_of = malloc(sizeof *all->all_of);
    ragd__v1__filter_list__init(all->all_of);
    all->all_of->n_filters = n;
    all->all_of->filters = malloc(n * sizeof *all->all_of->filters);
    memcpy(all->all_of->filters, parts, n * sizeof *parts);
    return all;
}

static void free_filter(Ragd__V1__Filter *f) {
    if (!f) return;
    switch (f->node_case) {
    case RAGD__V1__FILTER__NODE_COMPARE:
        free(f->compare->key);
        if (f->compare->value) free_value(f->compare->value);
        for (size_t i = 0; i < f->compare->n_values; i++) free_value(f->compare->values[i]);
        free(f->compare->values);
        free(f->compare);
        break;
    case RAGD__V1__FILTER__NODE_NEGATION: free_filter(f->negation); break;
    case RAGD__V1__FILTER__NODE_ALL_OF:
    case RAGD__V1__FILTER__NODE_ANY_OF: {
        Ragd__V1__FilterList *l = f->node_case == RAGD__V1__FILTER__NODE_ALL_OF ? f->all_of : f->any_of;
        for (size_t i = 0; i < l->n_filters; i++) free_filter(l->filters[i]);
        free(l->filters);
        free(l);
        break;
    }
    default: break;
    }
    free(f);
}

typedef struct { char *ids[1024]; size_t n_ids; char *answer; size_t answer_len; int tokens, done; } stream_state;

static int on_event(const Ragd__V1__StreamEvent *e, void *user) {
    stream_state *s = user;
    if (e->event_case == RAGD__V1__STREAM_EVENT__EVENT_SOURCES) {
        for (size_t i = 0; i < e->sources->n_sources && s->n_ids < 1024; i++) s->ids[s->n_ids++] = strdup(e->sources->sources[i]->chunk_id);
    } else if (e->event_case == RAGD__V1__STREAM_EVENT__EVENT_TOKEN) {
        size_t l = strlen(e->token);
        s->answer = realloc(s->answer, s->answer_len + l + 1);
        memcpy(s->answer + s->answer_len, e->token, l + 1);
        s->answer_len += l;
        s->tokens++;
    } else if (e->event_case == RAGD__V1__STREAM_EVENT__EVENT_DONE) {
        s->done = 1;
    }
    return 0;
}

/* The server under test may ask for a key and TLS: $RAGD_API_KEY for every
 * target, $RAGD_CONFORMANCE_TLS_CA for the main one (the fake servers are plain TCP). */
static ragd_client *open_target(const char *host, int port, int main_target, ragd_error *err) {
    ragd_options o = {0};
    o.api_key = getenv("RAGD_API_KEY");
    if (main_target) o.tls_ca = getenv("RAGD_CONFORMANCE_TLS_CA");
    return ragd_connect_with(host, port, &o, err);
}

int main(int argc, char **argv) {
    if (argc < 7) { fprintf(stderr, "usage: %s SCENARIOS HOST PORT SILENT_PORT HANGUP_PORT COLLECTION\n", argv[0]); return 2; }
    FILE *in = fopen(argv[1], "r");
    if (!in) { perror(argv[1]); return 2; }
    const char *host = argv[2], *collection = argv[6];
    int ports[3] = {atoi(argv[3]), atoi(argv[4]), atoi(argv[5])};
    ragd_client *clients[3] = {0};

    Ragd__V1__Document *docs[MAX_DOCS];
    size_t n_docs = 0;
    char line[8192];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *f[MAX_FIELDS];
        int nf = split(line, f);
        ragd_error err = {0};
        ragd_status st = RAGD_OK;
        if (strcmp(f[0], "doc") == 0 && nf >= 4 && n_docs < MAX_DOCS) {
            Ragd__V1__Document *d = malloc(sizeof *d);
            ragd__v1__document__init(d);
            d->id = strdup(f[1]);
            d->text = strdup(f[3]);
            d->metadata = calloc(MAX_CMP, sizeof *d->metadata);
            char *save = NULL;
            for (char *kv = strtok_r(f[2], ";", &save); kv && strcmp(f[2], "-") && d->n_metadata < MAX_CMP; kv = strtok_r(NULL, ";", &save)) {
                char *eq = strchr(kv, '=');
                if (!eq) continue;
                *eq = 0;
                Ragd__V1__Document__MetadataEntry *e = malloc(sizeof *e);
                ragd__v1__document__metadata_entry__init(e);
                e->key = strdup(kv);
                e->value = typed(eq + 1);
                d->metadata[d->n_metadata++] = e;
            }
            docs[n_docs++] = d;
            continue;
        }
        printf("{\"step\":");
        json_string(f[1]);
        if (!clients[0]) clients[0] = open_target(host, ports[0], 1, &err);
        if (strcmp(f[0], "index") == 0) {
            Ragd__V1__IndexRequest req = RAGD__V1__INDEX_REQUEST__INIT;
            req.collection = (char *)collection;
            req.n_documents = n_docs;
            req.documents = docs;
            Ragd__V1__IndexResponse *r = NULL;
            st = clients[0] ? ragd_index(clients[0], &req, 10000, &r, &err) : err.code;
            if (st == RAGD_OK) { printf(",\"documents\":%u,\"chunks\":%u", r->documents, r->chunks); ragd__v1__index_response__free_unpacked(r, NULL); }
        } else if (strcmp(f[0], "stats") == 0) {
            Ragd__V1__StatsRequest req = RAGD__V1__STATS_REQUEST__INIT;
            req.collection = (char *)collection;
            Ragd__V1__StatsResponse *r = NULL;
            st = clients[0] ? ragd_stats(clients[0], &req, 10000, &r, &err) : err.code;
            if (st == RAGD_OK) {
                if (r->n_collections) printf(",\"documents\":%llu,\"chunks\":%llu", (unsigned long long)r->collections[0]->documents, (unsigned long long)r->collections[0]->chunks);
                ragd__v1__stats_response__free_unpacked(r, NULL);
            }
        } else if (strcmp(f[0], "delete") == 0) {
            Ragd__V1__DeleteRequest req = RAGD__V1__DELETE_REQUEST__INIT;
            char *ids[64];
            size_t n = 0;
            char *save = NULL;
            for (char *id = strtok_r(f[2], ",", &save); id && n < 64; id = strtok_r(NULL, ",", &save)) ids[n++] = id;
            req.collection = (char *)collection;
            req.n_document_ids = n;
            req.document_ids = ids;
            Ragd__V1__DeleteResponse *r = NULL;
            st = clients[0] ? ragd_delete(clients[0], &req, 10000, &r, &err) : err.code;
            if (st == RAGD_OK) {
                printf(",\"deleted\":%u,\"not_found\":[", r->deleted);
                for (size_t i = 0; i < r->n_not_found; i++) { if (i) putchar(','); json_string(r->not_found[i]); }
                printf("]");
                ragd__v1__delete_response__free_unpacked(r, NULL);
            }
        } else if ((strcmp(f[0], "query") == 0 || strcmp(f[0], "stream") == 0) && nf >= 9) {
            int t = strcmp(f[2], "silent") == 0 ? 1 : strcmp(f[2], "hangup") == 0 ? 2 : 0;
            if (!clients[t]) clients[t] = open_target(host, ports[t], t == 0, &err);
            Ragd__V1__QueryRequest req = RAGD__V1__QUERY_REQUEST__INIT;
            req.collection = strcmp(f[3], "-") == 0 ? (char *)collection : f[3];
            req.query = f[8];
            uint32_t deadline = (uint32_t)atoi(f[4]);
            if (strcmp(f[5], "vector") == 0) req.mode = RAGD__V1__SEARCH_MODE__SEARCH_MODE_VECTOR;
            else if (strcmp(f[5], "keyword") == 0) req.mode = RAGD__V1__SEARCH_MODE__SEARCH_MODE_KEYWORD;
            else if (strcmp(f[5], "hybrid") == 0) req.mode = RAGD__V1__SEARCH_MODE__SEARCH_MODE_HYBRID;
            if (strcmp(f[6], "-")) { req.top_k_value_case = RAGD__V1__QUERY_REQUEST__TOP_K_VALUE_TOP_K; req.top_k = (uint32_t)strtoul(f[6], NULL, 10); }
            req.filter = parse_filter(f[7]);
            if (!clients[t]) {
                st = err.code;
            } else if (f[0][0] == 'q') {
                Ragd__V1__QueryResponse *r = NULL;
                st = ragd_query(clients[t], &req, deadline, &r, &err);
                if (st == RAGD_OK) {
                    printf(",\"ids\":[");
                    for (size_t i = 0; i < r->n_sources; i++) { if (i) putchar(','); json_string(r->sources[i]->chunk_id); }
                    printf("],\"scores\":[");
                    for (size_t i = 0; i < r->n_sources; i++) printf("%s%.17g", i ? "," : "", r->sources[i]->score);
                    printf("],\"answer\":");
                    json_string(r->answer);
                    ragd__v1__query_response__free_unpacked(r, NULL);
                }
            } else {
                stream_state s = {0};
                st = ragd_stream(clients[t], &req, deadline, on_event, &s, &err);
                if (st == RAGD_OK) {
                    printf(",\"ids\":[");
                    for (size_t i = 0; i < s.n_ids; i++) { if (i) putchar(','); json_string(s.ids[i]); }
                    printf("],\"answer\":");
                    json_string(s.answer ? s.answer : "");
                    printf(",\"tokens\":%s,\"done\":%s", s.tokens > 1 ? "true" : "false", s.done ? "true" : "false");
                }
                for (size_t i = 0; i < s.n_ids; i++) free(s.ids[i]);
                free(s.answer);
            }
            free_filter(req.filter);
            if (st == RAGD_UNAVAILABLE && clients[t]) { ragd_close(clients[t]); clients[t] = NULL; }
        }
        printf(",\"status\":\"%s\"}\n", ragd_status_name(st));
        fflush(stdout);
    }
    fclose(in);
    for (size_t i = 0; i < n_docs; i++) {
        for (size_t j = 0; j < docs[i]->n_metadata; j++) {
            free(docs[i]->metadata[j]->key);
            free_value(docs[i]->metadata[j]->value);
            free(docs[i]->metadata[j]);
        }
        free(docs[i]->metadata);
        free(docs[i]->id);
        free(docs[i]->text);
        free(docs[i]);
    }
    for (int i = 0; i < 3; i++) ragd_close(clients[i]);
    return 0;
}
