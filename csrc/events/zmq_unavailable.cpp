// The publisher factory of a build without ZeroMQ (CMake leaves out csrc/events/zmq/ when libzmq
// or msgpack-c is missing, and this file when both are found).
#include "common/error.h"
#include "events/publisher.h"

namespace pagedkv::events {

std::unique_ptr<Publisher> make_zmq_publisher(const PublisherConfig&) {
    fail(PAGEDKV_ERR_UNSUPPORTED,
         "this build of pagedkv has no ZeroMQ KV-event publisher: libzmq and msgpack-c were not found when it was "
         "configured (Debian: apt-get install libzmq3-dev libmsgpack-dev, then rebuild); the event callback "
         "(pagedkv_cache_set_event_callback) works in every build");
}

}  // namespace pagedkv::events
