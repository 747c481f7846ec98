// `ferry flow run`: a flow run here, without a server. The server's
// scheduler decides what may start (dependencies, conditions, retries with
// backoff, priorities); ferry's process set runs the commands, at most
// `jobs` at once. Each job's output is printed when it ends, as a whole.
#pragma once

#include "flowfile/flowfile.hpp"

namespace ferry::cli {

// 0 when the flow succeeded (as a server would say it), 1 when not; 130 or
// 143 when interrupted (the running jobs are stopped first). A flow that
// cannot run here (calls, dependencies on a server's job ids) throws
// run::UsageError before anything starts.
int run_flow_here(const flowfile::FlowDocument& flow, int jobs);

}  // namespace ferry::cli
