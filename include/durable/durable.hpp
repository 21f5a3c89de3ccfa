// durable/durable.hpp — everything a user of durable includes.
#pragma once

#include "durable/client.hpp"
#include "durable/clock.hpp"
#include "durable/context.hpp"
#include "durable/cron.hpp"
#include "durable/database.hpp"
#include "durable/errors.hpp"
#include "durable/history.hpp"
#include "durable/host.hpp"
#include "durable/metrics.hpp"
#include "durable/registry.hpp"
#include "durable/resilience.hpp"
#include "durable/schedule.hpp"
#include "durable/shared_provider.hpp"
#include "durable/status.hpp"
#include "durable/task.hpp"
#include "durable/tracing.hpp"
