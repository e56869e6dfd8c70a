// Who runs hoist and where: one answer for every record (runs, leases, lock
// releases, hoist_schema_migrations.applied_by).
#pragma once

#include <string>

namespace hoist {

/// HOIST_OPERATOR, else SUDO_USER, USER, LOGNAME, else the uid's name.
std::string OperatorName();
/// This host's name ("unknown" when it cannot be read).
std::string HostName();
/// "operator@host", as migrations record who applied them.
std::string OperatorAtHost();

}  // namespace hoist
