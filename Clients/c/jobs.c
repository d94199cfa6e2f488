/* ragd-c-jobs HOST PORT: an index job uploaded in three parts from C, polled
 * until it finishes, plus NOT_FOUND for an unknown job. Prints "ok" or fails
 * with exit 1. Everything is freed, so valgrind can check the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ragd_client.h"

#define DOCS 600
#define PARTS 3

static int fail(const char *what, const ragd_error *err) {
    fprintf(stderr, "ragd-c-jobs: %s: %s: %s\n", what, ragd_status_name(err->code), err->message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s HOST PORT\n", argv[0]); return 2; }
    ragd_error err;
    ragd_client *c = ragd_connect(argv[1], atoi(argv[2]), &err);
    if (!c) return fail("connect", &err);

    static char ids[DOCS][16], texts[DOCS][64];
    Ragd__V1__Document docs[DOCS], *ptrs[DOCS];
    for (int i = 0; i < DOCS; i++) {
        snprintf(ids[i], sizeof ids[i], "c%d", i);
        snprintf(texts[i], sizeof texts[i], "C job document %d holds term%d.", i, i);
        ragd__v1__document__init(&docs[i]);
        docs[i].id = ids[i];
        docs[i].text = texts[i];
        ptrs[i] = &docs[i];
    }
    char job_id[64] = "";
    for (int p = 0; p < PARTS; p++) {
        Ragd__V1__IndexRequest index = RAGD__V1__INDEX_REQUEST__INIT;
        index.collection = p == 0 ? "cjobs" : "";
        index.n_documents = DOCS / PARTS;
        index.documents = ptrs + p * (DOCS / PARTS);
        Ragd__V1__JobSpec spec = RAGD__V1__JOB_SPEC__INIT;
        spec.work_case = RAGD__V1__JOB_SPEC__WORK_INDEX;
        spec.index = &index;
        Ragd__V1__SubmitJobRequest req = RAGD__V1__SUBMIT_JOB_REQUEST__INIT;
        req.spec = &spec;
        req.more = p < PARTS - 1;
        if (p > 0) req.append_to = job_id;
        Ragd__V1__SubmitJobResponse *r = NULL;
        if (ragd_submit_job(c, &req, 10000, &r, &err) != RAGD_OK) { ragd_close(c); return fail("submit", &err); }
        const char *want = p < PARTS - 1 ? "staging" : "queued";
        int ok = strcmp(r->job->state, want) == 0 || (p == PARTS - 1 && strcmp(r->job->state, "running") == 0);
        if (!ok || r->job->progress_total != (uint64_t)(DOCS / PARTS) * (p + 1)) {
            fprintf(stderr, "ragd-c-jobs: part %d: state %s, total %llu\n", p, r->job->state, (unsigned long long)r->job->progress_total);
            ragd__v1__submit_job_response__free_unpacked(r, NULL);
            ragd_close(c);
            return 1;
        }
        snprintf(job_id, sizeof job_id, "%s", r->job->id);
        ragd__v1__submit_job_response__free_unpacked(r, NULL);
    }
    int finished = 0;
    for (int tries = 0; tries < 600 && !finished; tries++) {
        Ragd__V1__GetJobResponse *g = NULL;
        if (ragd_get_job(c, job_id, 10000, &g, &err) != RAGD_OK) { ragd_close(c); return fail("get", &err); }
        const char *s = g->job->state;
        if (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled")) {
            finished = 1;
            if (strcmp(s, "succeeded") != 0 || g->job->progress_done != DOCS) {
                fprintf(stderr, "ragd-c-jobs: job ended %s at %llu/%d\n", s, (unsigned long long)g->job->progress_done, DOCS);
                ragd__v1__get_job_response__free_unpacked(g, NULL);
                ragd_close(c);
                return 1;
            }
        }
        ragd__v1__get_job_response__free_unpacked(g, NULL);
        if (!finished) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    if (!finished) { fprintf(stderr, "ragd-c-jobs: job did not finish\n"); ragd_close(c); return 1; }
    Ragd__V1__CancelJobResponse *x = NULL;
    if (ragd_cancel_job(c, "no-such-job", 10000, &x, &err) != RAGD_NOT_FOUND) {
        if (x) ragd__v1__cancel_job_response__free_unpacked(x, NULL);
        ragd_close(c);
        fprintf(stderr, "ragd-c-jobs: cancelling an unknown job did not say NOT_FOUND\n");
        return 1;
    }
    ragd_close(c);
    printf("ok\n");
    return 0;
}
