// Herald's public API in one header: #include <herald/herald.hpp>
//
// serve, server and socket (actors/server.hpp, actors/socket.hpp), the
// runtime (actors/runtime.hpp), topics for any actor (actors/topics.hpp),
// metrics (actors/metrics.hpp), HTTP requests and responses (net/http.hpp),
// logging (net/log.hpp) and the messages actors receive
// (messages/messages.hpp). The testing kit is separate:
// #include <herald/actors/testing.hpp>.
#pragma once

#include "herald/actors/metrics.hpp"
#include "herald/actors/runtime.hpp"
#include "herald/actors/server.hpp"
#include "herald/actors/socket.hpp"
#include "herald/actors/topics.hpp"
#include "herald/messages/messages.hpp"
#include "herald/net/http.hpp"
#include "herald/net/log.hpp"
