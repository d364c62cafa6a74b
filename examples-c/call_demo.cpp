// call_demo.cpp: call_demo.c through the C++ wrapper (nim_signaling.hpp).
//
//   alice calls bob (create + join + invite in one step), bob is rung and
//   accepts with autoJoin, alice sees ACCEPT and bob's ROOM_JOIN, alice
//   sends a control command that bob receives, alice closes the room and
//   bob gets ROOM_CLOSE. Results come back as std::future<Result>;
//   notifications go to std::function handlers that queue them for the
//   main thread. Before logging in, a request shows the error path: a
//   future that is ready at once with 415, and a callback never called.
//
// Exits 0 (last line "call demo (C++): OK") only when every step happened
// within kTimeout; otherwise prints what was missing and exits 1.
#include "nim_signaling.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <string>

namespace ns = nim_signaling;

namespace {

const std::chrono::milliseconds kTimeout(10000);
// The library itself answers 408 after requestTimeoutMs (10 s by default).
const std::chrono::milliseconds kResultTimeout(12000);

// One line at once: handlers of different clients run on different threads.
std::mutex print_mu;
void say(const std::string &who, const std::string &what)
{
    std::lock_guard<std::mutex> lock(print_mu);
    std::printf("[%s] %s\n", who.c_str(), what.c_str());
    std::fflush(stdout);
}

// The string value of the first "key":"..." in the library's compact JSON
// (escapes kept as they are); "" when absent.
std::string json_string(const std::string &json, const std::string &key)
{
    const std::string pattern = "\"" + key + "\":\"";
    std::size_t p = json.find(pattern);
    if (p == std::string::npos)
        return "";
    std::string out;
    for (p += pattern.size(); p < json.size() && json[p] != '"'; p++) {
        if (json[p] == '\\' && p + 1 < json.size())
            out += json[p++];
        out += json[p];
    }
    return out;
}

// What one client's handlers received, for the main thread to wait on.
class Inbox {
public:
    explicit Inbox(std::string name) : name_(std::move(name)) {}
    const std::string &name() const { return name_; }

    // Registers every notification handler of `c`, printing as they come.
    void watch(ns::Client &c)
    {
        c.on_online([this](std::string j) { note("event", j, true); });
        c.on_multi_client_sync([this](std::string j) { note("multi-client sync", j, false); });
        c.on_members_sync([this](std::string j) { note("members sync", j, false); });
        c.on_offline([this](std::string j) { note("offline events", j, false); });
        c.on_channels_sync([this](std::string j) { note("channels sync", j, false); });
        c.on_connection_state([this](std::string j) {
            note("connection " + json_string(j, "state"), j, false);
        });
    }

    // Waits for an online event of this type whose `key` is `value`;
    // returns its JSON, or "" after saying what was missing.
    std::string expect_event(const std::string &type, const std::string &key,
                             const std::string &value)
    {
        std::unique_lock<std::mutex> lock(mu_);
        std::string found;
        bool ok = cv_.wait_for(lock, kTimeout, [&] {
            for (auto it = events_.begin(); it != events_.end(); ++it) {
                if (json_string(*it, "eventType") == type) {
                    found = *it;
                    events_.erase(it);
                    return true;
                }
            }
            return false;
        });
        lock.unlock();
        if (!ok) {
            say(name_, "MISSING after " + std::to_string(kTimeout.count()) + " ms: event " + type);
            return "";
        }
        std::string got = json_string(found, key);
        if (got != value) {
            say(name_, "FAILED: \"" + key + "\" is \"" + got + "\", expected \"" + value + "\"");
            return "";
        }
        return found;
    }

private:
    void note(const std::string &what, const std::string &json, bool online)
    {
        std::string type = online ? json_string(json, "eventType") : "";
        say(name_, what + (type.empty() ? "" : " " + type) + " " + json);
        if (online) {
            std::lock_guard<std::mutex> lock(mu_);
            events_.push_back(json);
            cv_.notify_all();
        }
    }

    std::string name_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> events_;
};

// Waits for a request's result, prints "[who] op -> code json"; true on 200.
bool ok(const Inbox &who, const char *op, std::future<ns::Result> f, std::string *json = nullptr)
{
    if (f.wait_for(kResultTimeout) != std::future_status::ready) {
        say(who.name(), std::string(op) + " -> no result");
        return false;
    }
    ns::Result r = f.get();
    say(who.name(), std::string(op) + " -> " + std::to_string(r.code) + " " + r.json);
    if (json)
        *json = r.json;
    if (!r.ok())
        say(who.name(), std::string("FAILED: ") + op + " gave " + std::to_string(r.code) +
                            ", expected 200");
    return r.ok();
}

ns::Client client(const std::string &url, const std::string &account, const std::string &device,
                  Inbox &inbox)
{
    int32_t code = 0;
    ns::Client c = ns::Client::make("{\"serverUrl\":\"" + url + "\",\"account\":\"" + account +
                                        "\",\"token\":\"\",\"deviceId\":\"" + device + "\"}",
                                    &code);
    if (!c)
        say(inbox.name(), "client make -> " + std::to_string(code));
    else
        inbox.watch(c);
    return c;
}

// Requests that cannot start: the future is ready at once, the callback is
// never called, nothing throws.
bool not_started(Inbox &who, ns::Client &c)
{
    const std::string params = "{\"type\":1,\"account\":\"bob\",\"requestId\":\"req-0\"}";
    std::future<ns::Result> f = c.call(params);
    if (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        say(who.name(), "FAILED: a request before login was not answered at once");
        return false;
    }
    ns::Result r = f.get();
    say(who.name(), "call before login -> " + std::to_string(r.code) + " " + r.json);
    bool called = false;
    int32_t rc = c.call(params, [&called](int, std::string) { called = true; });
    say(who.name(), "call before login (callback) -> " + std::to_string(rc));
    if (r.code != NIM_SIGNALING_NOT_CONNECTED || rc != NIM_SIGNALING_NOT_CONNECTED || called) {
        say(who.name(), "FAILED: expected 415 both ways and no callback");
        return false;
    }
    return true;
}

bool demo()
{
    int32_t code = 0;
    ns::Server srv = ns::Server::start("{}", &code);
    if (!srv) {
        say("server", "start {} -> " + std::to_string(code));
        return false;
    }
    say("server", "nim-signaling " + ns::version() + " listening on " + srv.url());

    // Declared after the server, so destroyed before it; the inboxes are
    // declared before their clients, so they outlive every callback.
    Inbox aw("alice"), bw("bob");
    ns::Client alice = client(srv.url(), "alice", "alice-phone", aw);
    ns::Client bob = client(srv.url(), "bob", "bob-phone", bw);
    if (!alice || !bob)
        return false;

    if (!not_started(aw, alice))
        return false;

    // Both log in.
    if (!ok(aw, "login", alice.login()) || !ok(bw, "login", bob.login()))
        return false;

    // alice calls bob: the room is created, alice joins, bob is invited.
    std::string res;
    if (!ok(aw, "call",
            alice.call("{\"type\":1,\"account\":\"bob\",\"requestId\":\"req-1\","
                       "\"attachExt\":\"hello\"}"),
            &res))
        return false;
    const std::string cid = json_string(res, "channelId");
    if (cid.empty()) {
        say("alice", "FAILED: no channelId in the call result");
        return false;
    }

    // bob is rung and accepts, joining the room at once.
    const std::string invite = bw.expect_event("INVITE", "requestId", "req-1");
    if (invite.empty() || json_string(invite, "attachExt") != "hello") {
        say("bob", "FAILED: no INVITE with attachExt \"hello\"");
        return false;
    }
    if (!ok(bw, "accept",
            bob.accept("{\"channelId\":\"" + cid +
                       "\",\"account\":\"alice\",\"requestId\":\"req-1\",\"autoJoin\":true}")))
        return false;

    // alice learns that bob accepted and joined.
    if (aw.expect_event("ACCEPT", "fromAccountId", "bob").empty() ||
        aw.expect_event("ROOM_JOIN", "account", "bob").empty())
        return false;

    // A control command (e.g. "mute") from alice to the room.
    if (!ok(aw, "control",
            alice.control("{\"channelId\":\"" + cid +
                          "\",\"attachExt\":\"{\\\"cmd\\\":\\\"mute\\\"}\"}")))
        return false;
    if (bw.expect_event("CONTROL", "attachExt", "{\\\"cmd\\\":\\\"mute\\\"}").empty())
        return false;

    // alice hangs up: the room is closed for everyone.
    if (!ok(aw, "close", alice.close("{\"channelId\":\"" + cid + "\"}")))
        return false;
    if (bw.expect_event("ROOM_CLOSE", "fromAccountId", "alice").empty())
        return false;
    return true;
    // The clients are freed here (no callback runs afterwards), then the
    // inboxes, then the server.
}

} // namespace

int main()
{
    bool passed = demo();
    std::puts(passed ? "call demo (C++): OK" : "call demo (C++): FAILED");
    return passed ? 0 : 1;
}
