// libpq, loaded on first use (sys::DynLib): linking it would cost every
// hoist start-up ~7 ms for a library most playbooks never touch. The
// pointers are typed from <libpq-fe.h>, so a signature mismatch is a
// compile error, not a crash.
#pragma once

#include <libpq-fe.h>

namespace hoist::db {

struct LibPq {
#define HOIST_PQ_FN(name) decltype(&::name) name = nullptr;
  HOIST_PQ_FN(PQconnectdb)
  HOIST_PQ_FN(PQstatus)
  HOIST_PQ_FN(PQerrorMessage)
  HOIST_PQ_FN(PQfinish)
  HOIST_PQ_FN(PQsetNoticeProcessor)
  HOIST_PQ_FN(PQsendQuery)
  HOIST_PQ_FN(PQsendQueryParams)
  HOIST_PQ_FN(PQconsumeInput)
  HOIST_PQ_FN(PQisBusy)
  HOIST_PQ_FN(PQgetResult)
  HOIST_PQ_FN(PQsocket)
  HOIST_PQ_FN(PQgetCancel)
  HOIST_PQ_FN(PQcancel)
  HOIST_PQ_FN(PQfreeCancel)
  HOIST_PQ_FN(PQresultStatus)
  HOIST_PQ_FN(PQresultErrorMessage)
  HOIST_PQ_FN(PQresultErrorField)
  HOIST_PQ_FN(PQntuples)
  HOIST_PQ_FN(PQnfields)
  HOIST_PQ_FN(PQfname)
  HOIST_PQ_FN(PQftype)
  HOIST_PQ_FN(PQgetisnull)
  HOIST_PQ_FN(PQgetvalue)
  HOIST_PQ_FN(PQgetlength)
  HOIST_PQ_FN(PQcmdTuples)
  HOIST_PQ_FN(PQclear)
  HOIST_PQ_FN(PQhost)
  HOIST_PQ_FN(PQport)
  HOIST_PQ_FN(PQdb)
  HOIST_PQ_FN(PQuser)
  HOIST_PQ_FN(PQserverVersion)
  HOIST_PQ_FN(PQtransactionStatus)
  HOIST_PQ_FN(PQbackendPID)
#undef HOIST_PQ_FN
};

/// The loaded library (loaded once, kept for the process's life). Throws
/// Error{"db","unavailable","PostgreSQL needs libpq.so.5 (install the Debian
/// package libpq5): ..."} when it cannot be loaded.
const LibPq& Pq();

}  // namespace hoist::db
