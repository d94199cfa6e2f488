// glibc's posix_spawn extensions (closefrom, chdir) and pipe2, which Swift's
// Glibc module does not export (they need _GNU_SOURCE). Used by RagTesting's
// ChildProcess.
#ifndef RAG_SPAWN_H
#define RAG_SPAWN_H
#include <spawn.h>

int rag_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);
int rag_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *directory);
int rag_pipe_cloexec(int fds[2]);

#endif
