// What a long-running ferry process tells the service manager that started
// it (systemd's sd_notify protocol): that it is ready, a one-line status for
// `systemctl status`, and that it is stopping. A unit of Type=notify waits
// for "ready", so `systemctl start ferry-server` returns once the server
// listens, and fails when it cannot start.
//
// Outside such a unit (no NOTIFY_SOCKET), or in a build without libsystemd,
// every call does nothing.
#pragma once

#include <string_view>

namespace ferry::daemon {

// Built with libsystemd: the calls below reach the service manager.
bool can_notify();

void notify_ready(std::string_view status);
void notify_status(std::string_view status);
void notify_stopping(std::string_view status);

}  // namespace ferry::daemon
