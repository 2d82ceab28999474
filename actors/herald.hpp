// Everything a Herald application needs: #include <herald/actors/herald.hpp>
#pragma once

#include "herald/net/log.hpp"
#include "herald/actors/metrics.hpp"
#include "herald/actors/runtime.hpp"
#include "herald/actors/server.hpp"
#include "herald/actors/socket.hpp"
#include "herald/actors/topics.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/http.hpp"
