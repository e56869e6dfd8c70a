#include "db/libpq.h"

#include <memory>
#include <mutex>

#include "sys/dynlib.h"

namespace hoist::db {

const LibPq& Pq() {
  static std::mutex mu;
  static std::unique_ptr<sys::DynLib> lib;
  static LibPq pq;
  std::lock_guard lock(mu);
  if (lib) return pq;
  auto loaded = std::make_unique<sys::DynLib>(std::initializer_list<const char*>{"libpq.so.5"}, "db", "PostgreSQL",
                                              "libpq5");
  LibPq p;
#define HOIST_PQ_LOAD(name) p.name = loaded->Get<decltype(&::name)>(#name);
  HOIST_PQ_LOAD(PQconnectdb)
  HOIST_PQ_LOAD(PQstatus)
  HOIST_PQ_LOAD(PQerrorMessage)
  HOIST_PQ_LOAD(PQfinish)
  HOIST_PQ_LOAD(PQsetNoticeProcessor)
  HOIST_PQ_LOAD(PQsendQuery)
  HOIST_PQ_LOAD(PQsendQueryParams)
  HOIST_PQ_LOAD(PQconsumeInput)
  HOIST_PQ_LOAD(PQisBusy)
  HOIST_PQ_LOAD(PQgetResult)
  HOIST_PQ_LOAD(PQsocket)
  HOIST_PQ_LOAD(PQgetCancel)
  HOIST_PQ_LOAD(PQcancel)
  HOIST_PQ_LOAD(PQfreeCancel)
  HOIST_PQ_LOAD(PQresultStatus)
  HOIST_PQ_LOAD(PQresultErrorMessage)
  HOIST_PQ_LOAD(PQresultErrorField)
  HOIST_PQ_LOAD(PQntuples)
  HOIST_PQ_LOAD(PQnfields)
  HOIST_PQ_LOAD(PQfname)
  HOIST_PQ_LOAD(PQftype)
  HOIST_PQ_LOAD(PQgetisnull)
  HOIST_PQ_LOAD(PQgetvalue)
  HOIST_PQ_LOAD(PQgetlength)
  HOIST_PQ_LOAD(PQcmdTuples)
  HOIST_PQ_LOAD(PQclear)
  HOIST_PQ_LOAD(PQhost)
  HOIST_PQ_LOAD(PQport)
  HOIST_PQ_LOAD(PQdb)
  HOIST_PQ_LOAD(PQuser)
  HOIST_PQ_LOAD(PQserverVersion)
  HOIST_PQ_LOAD(PQtransactionStatus)
  HOIST_PQ_LOAD(PQbackendPID)
#undef HOIST_PQ_LOAD
  pq = p;
  lib = std::move(loaded);
  return pq;
}

}  // namespace hoist::db
