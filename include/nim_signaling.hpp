/*
 * nim_signaling.hpp: a header-only C++17 wrapper over the C ABI of
 * nim_signaling.h. Link exactly as for C (-lnim_signaling, or the CMake
 * target NimSignaling::nim_signaling); nothing else to build.
 *
 *     #include "nim_signaling.hpp"
 *     namespace ns = nim_signaling;
 *
 *     int32_t code = 0;
 *     ns::Server srv = ns::Server::start("{}", &code);        // embedded server
 *     ns::Client alice = ns::Client::make(
 *         "{\"serverUrl\":\"" + srv.url() + "\",\"account\":\"alice\"}", &code);
 *     if (!alice) return code;                                  // 414: bad config
 *     alice.on_online([](std::string event) { ... });          // library thread
 *     ns::Result r = alice.login().get();                       // r.code == 200
 *     alice.call("{\"type\":1,\"account\":\"bob\",\"requestId\":\"r1\"}",
 *                [](int code, std::string json) { ... });      // callback variant
 *
 * Errors, no exceptions
 *   Nothing here throws on its own; codes are the C API's NIM codes
 *   (nim_signaling_code, 200 = success).
 *   - Factories that can fail (Client::make, Server::start) return an
 *     empty object (operator bool false) and write the code to `*code`
 *     when `code` is not NULL.
 *   - Every request exists twice:
 *       int32_t op(params, ResultCallback cb)   callback variant: returns what
 *           the C function returned; on 200 `cb` is called exactly once,
 *           later, on a library thread; on any other code nothing was sent
 *           and `cb` is never called (and is destroyed before op returns).
 *       std::future<Result> op(params)          future variant: the future
 *           becomes ready with the outcome; when the request could not be
 *           started it is ready at once with that code and a JSON error
 *           `{"code":N,"message":"..."}` (never a broken promise).
 *   - An empty or moved-from Client answers every call with 414
 *     (NIM_SIGNALING_INVALID_PARAM), as the C API does for a NULL client.
 *   - Our own allocations use new(std::nothrow): on failure a call returns
 *     500 (NIM_SIGNALING_INTERNAL). Copying your callables and strings
 *     uses the standard library, which reports memory exhaustion its usual
 *     way (std::bad_alloc, or abort under -fno-exceptions).
 *   - Handlers must not throw: an exception escaping a handler reaches a
 *     noexcept trampoline and calls std::terminate (it never unwinds into
 *     the library).
 *   - The callback variants and the handlers work with -fno-exceptions.
 *     The future variants do too (tested with GCC's libstdc++); define
 *     NIM_SIGNALING_HPP_NO_FUTURES before including this header to leave
 *     them (and <future>) out.
 *
 * Threads
 *   Handlers and result callbacks run on library threads, never on the
 *   thread that made the call; all of one client run one at a time, in
 *   order. Any member function may be called from inside them, even the
 *   destructor of the Client whose callback is running (client_free then
 *   runs the callbacks still queued inline). Never wait on a future of the
 *   same client inside its callback: that result is queued behind the
 *   callback that waits, a deadlock. Member functions of one Client may be
 *   called from several threads at once; moving, assigning or destroying a
 *   Client must not race with other use of that same object.
 *
 * Ownership and lifetimes
 *   - Client owns its nim_signaling_client * and frees it with
 *     nim_signaling_client_free in the destructor (also reset()). Movable,
 *     not copyable. The handler slots live on the heap beside the handle
 *     and are freed only after nim_signaling_client_free has returned, when
 *     no callback of the client can run any more.
 *   - Setting a handler replaces the previous one for notifications
 *     delivered after the setter returns; an empty std::function
 *     unregisters. A handler running while it is replaced finishes
 *     normally (each call holds its own reference).
 *   - Strings handed to handlers are copies (std::string): keep them as
 *     long as you like. Params are borrowed for the call only.
 *   - Pending requests complete (415) before the destructor returns, so
 *     every future becomes ready and every callback runs once, even when
 *     the Client goes away first.
 *   - Server owns its nim_signaling_server * and stops it in the
 *     destructor (also stop()). Movable, not copyable. Destroy the clients
 *     or let them see the connection drop; either order is safe.
 */
#ifndef NIM_SIGNALING_HPP
#define NIM_SIGNALING_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#ifndef NIM_SIGNALING_HPP_NO_FUTURES
#include <future>
#endif

#include "nim_signaling.h"

namespace nim_signaling {

/* The outcome of a request: the callback's code and JSON (the seed's
 * `data` object on success, its `error` object otherwise). */
struct Result {
    int code;
    std::string json;
    bool ok() const { return code == NIM_SIGNALING_OK; }
};

/* Called once per request, on a library thread. */
using ResultCallback = std::function<void(int code, std::string json)>;
/* A notification (the JSON of nim_signaling_event_cb), on a library thread. */
using EventHandler = std::function<void(std::string json)>;

/* The library version, e.g. "0.1.0". */
inline std::string version() { return nim_signaling_version(); }

/* A short English name of a code, for the JSON of requests not started. */
inline const char *code_message(int code)
{
    switch (code) {
    case NIM_SIGNALING_OK: return "ok";
    case NIM_SIGNALING_INVALID_PARAM: return "request not started: invalid parameter or client";
    case NIM_SIGNALING_NOT_CONNECTED: return "request not started: not logged in";
    case NIM_SIGNALING_RATE_LIMITED: return "request not started: too many requests outstanding";
    case NIM_SIGNALING_INTERNAL: return "request not started: internal error";
    default: return "request not started";
    }
}

/* `{"code":N,"message":"..."}` (the messages above need no escaping). */
inline std::string error_json(int code)
{
    return std::string("{\"code\":") + std::to_string(code) + ",\"message\":\"" +
           code_message(code) + "\"}";
}

namespace detail {

/* One notification kind of one client: the C callback's user_data. */
struct HandlerSlot {
    std::mutex mu;     /* guards fn; taken by the trampoline */
    std::mutex reg_mu; /* orders setters: swap and registration as one */
    std::shared_ptr<const EventHandler> fn;
};

enum Kind {
    ONLINE,
    MULTI_CLIENT_SYNC,
    MEMBERS_SYNC,
    OFFLINE,
    CHANNELS_SYNC,
    CONNECTION_STATE,
    KINDS
};

using RegFn = int32_t (*)(nim_signaling_client *, nim_signaling_event_cb, void *);
using RequestFn = int32_t (*)(nim_signaling_client *, const char *, nim_signaling_result_cb,
                              void *);
using SessionFn = int32_t (*)(nim_signaling_client *, nim_signaling_result_cb, void *);

/* The handle and the slots, on the heap so that moving a Client never moves
 * what the library holds pointers to. */
struct ClientState {
    nim_signaling_client *handle = nullptr;
    HandlerSlot slots[KINDS];
};

inline void event_trampoline(const char *json, void *user_data) noexcept
{
    HandlerSlot *slot = static_cast<HandlerSlot *>(user_data);
    std::shared_ptr<const EventHandler> fn;
    {
        std::lock_guard<std::mutex> lock(slot->mu);
        fn = slot->fn;
    }
    /* Only the local reference is used from here on: the handler may replace
     * itself or destroy the Client. */
    if (fn && *fn)
        (*fn)(std::string(json ? json : "null"));
}

/* user_data of a callback-variant request: owned by the pending request. */
inline void callback_trampoline(int32_t code, const char *json, void *user_data) noexcept
{
    std::unique_ptr<ResultCallback> cb(static_cast<ResultCallback *>(user_data));
    if (*cb)
        (*cb)(code, std::string(json ? json : "null"));
}

template <typename Start>
int32_t start_with_callback(Start start, ResultCallback cb)
{
    if (!cb)
        return start(nullptr, nullptr);
    ResultCallback *held = new (std::nothrow) ResultCallback(std::move(cb));
    if (!held)
        return NIM_SIGNALING_INTERNAL;
    int32_t rc = start(callback_trampoline, held);
    if (rc != NIM_SIGNALING_OK)
        delete held; /* not started: the library never calls back */
    return rc;
}

#ifndef NIM_SIGNALING_HPP_NO_FUTURES
inline void promise_trampoline(int32_t code, const char *json, void *user_data) noexcept
{
    std::unique_ptr<std::promise<Result>> p(static_cast<std::promise<Result> *>(user_data));
    p->set_value(Result{code, std::string(json ? json : "null")});
}

inline std::future<Result> ready_future(int code)
{
    std::promise<Result> p;
    std::future<Result> f = p.get_future();
    p.set_value(Result{code, error_json(code)});
    return f;
}

template <typename Start>
std::future<Result> start_with_future(Start start)
{
    std::promise<Result> *p = new (std::nothrow) std::promise<Result>();
    if (!p)
        return ready_future(NIM_SIGNALING_INTERNAL);
    std::future<Result> f = p->get_future();
    int32_t rc = start(promise_trampoline, p);
    if (rc != NIM_SIGNALING_OK) {
        delete p; /* never set: our future would be broken, so make a new one */
        return ready_future(rc);
    }
    return f;
}
#endif

} // namespace detail

/* One account on one device (a nim_signaling_client). */
class Client {
public:
    /* An empty client: every call answers 414. */
    Client() noexcept = default;

    /* nim_signaling_client_new(config_json): see nim_signaling.h for the
     * keys. (Named make, not create: create is signalingCreate below.)
     * On success a client, not connected until login, and *code = 200;
     * otherwise an empty Client and *code = 414 (bad config) or 500
     * (internal; also when memory for the wrapper's state is exhausted). */
    static Client make(const std::string &config_json, int32_t *code = nullptr)
    {
        Client c;
        c.state_ = new (std::nothrow) detail::ClientState();
        int32_t rc = NIM_SIGNALING_INTERNAL;
        if (c.state_) {
            rc = nim_signaling_client_new(config_json.c_str(), &c.state_->handle);
            if (rc != NIM_SIGNALING_OK) {
                delete c.state_;
                c.state_ = nullptr;
            }
        }
        if (code)
            *code = rc;
        return c;
    }

    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    Client(Client &&other) noexcept : state_(other.state_) { other.state_ = nullptr; }
    Client &operator=(Client &&other) noexcept
    {
        if (this != &other) {
            reset();
            state_ = other.state_;
            other.state_ = nullptr;
        }
        return *this;
    }
    ~Client() { reset(); }

    /* Frees the client now (nim_signaling_client_free: logs out, completes
     * pending requests with 415, no callback runs afterwards) and leaves
     * this Client empty. */
    void reset() noexcept
    {
        if (!state_)
            return;
        detail::ClientState *s = state_;
        state_ = nullptr;
        nim_signaling_client_free(s->handle);
        delete s; /* after client_free returned: no callback uses a slot */
    }

    explicit operator bool() const noexcept { return state_ != nullptr; }
    /* The C handle, still owned by this Client (NULL when empty). */
    nim_signaling_client *handle() const noexcept { return state_ ? state_->handle : nullptr; }

    /* Notification handlers: return 200, or 414 for an empty Client. */
    int32_t on_online(EventHandler h)
    {
        return set(detail::ONLINE, nim_signaling_reg_online_notify_cb, std::move(h));
    }
    int32_t on_multi_client_sync(EventHandler h)
    {
        return set(detail::MULTI_CLIENT_SYNC, nim_signaling_reg_multi_client_sync_notify_cb,
                   std::move(h));
    }
    int32_t on_members_sync(EventHandler h)
    {
        return set(detail::MEMBERS_SYNC, nim_signaling_reg_members_sync_cb, std::move(h));
    }
    int32_t on_offline(EventHandler h)
    {
        return set(detail::OFFLINE, nim_signaling_reg_offline_notify_cb, std::move(h));
    }
    int32_t on_channels_sync(EventHandler h)
    {
        return set(detail::CHANNELS_SYNC, nim_signaling_reg_channels_sync_cb, std::move(h));
    }
    int32_t on_connection_state(EventHandler h)
    {
        return set(detail::CONNECTION_STATE, nim_signaling_reg_connection_state_cb,
                   std::move(h));
    }

    /* Requests: see the top of this file for the two variants, and
     * nim_signaling.h for each one's params, data and codes. */
    int32_t login(ResultCallback cb) { return session(nim_signaling_login, std::move(cb)); }
    int32_t logout(ResultCallback cb) { return session(nim_signaling_logout, std::move(cb)); }

#define NIM_SIGNALING_HPP_REQUEST(name)                                                  \
    int32_t name(const std::string &params_json, ResultCallback cb)                      \
    {                                                                                    \
        return request(nim_signaling_##name, params_json, std::move(cb));                \
    }
    NIM_SIGNALING_HPP_REQUEST(create)
    NIM_SIGNALING_HPP_REQUEST(close)
    NIM_SIGNALING_HPP_REQUEST(join)
    NIM_SIGNALING_HPP_REQUEST(leave)
    NIM_SIGNALING_HPP_REQUEST(invite)
    NIM_SIGNALING_HPP_REQUEST(invite_many)
    NIM_SIGNALING_HPP_REQUEST(cancel_invite)
    NIM_SIGNALING_HPP_REQUEST(accept)
    NIM_SIGNALING_HPP_REQUEST(reject)
    NIM_SIGNALING_HPP_REQUEST(control)
    NIM_SIGNALING_HPP_REQUEST(call)
    NIM_SIGNALING_HPP_REQUEST(sync)
    NIM_SIGNALING_HPP_REQUEST(query_channel_info)
    NIM_SIGNALING_HPP_REQUEST(register_push_token)
    NIM_SIGNALING_HPP_REQUEST(query_invitations)
    NIM_SIGNALING_HPP_REQUEST(update_channel)
#undef NIM_SIGNALING_HPP_REQUEST

#ifndef NIM_SIGNALING_HPP_NO_FUTURES
    std::future<Result> login() { return session_future(nim_signaling_login); }
    std::future<Result> logout() { return session_future(nim_signaling_logout); }

#define NIM_SIGNALING_HPP_REQUEST(name)                                                  \
    std::future<Result> name(const std::string &params_json)                             \
    {                                                                                    \
        return request_future(nim_signaling_##name, params_json);                        \
    }
    NIM_SIGNALING_HPP_REQUEST(create)
    NIM_SIGNALING_HPP_REQUEST(close)
    NIM_SIGNALING_HPP_REQUEST(join)
    NIM_SIGNALING_HPP_REQUEST(leave)
    NIM_SIGNALING_HPP_REQUEST(invite)
    NIM_SIGNALING_HPP_REQUEST(invite_many)
    NIM_SIGNALING_HPP_REQUEST(cancel_invite)
    NIM_SIGNALING_HPP_REQUEST(accept)
    NIM_SIGNALING_HPP_REQUEST(reject)
    NIM_SIGNALING_HPP_REQUEST(control)
    NIM_SIGNALING_HPP_REQUEST(call)
    NIM_SIGNALING_HPP_REQUEST(query_channel_info)
    NIM_SIGNALING_HPP_REQUEST(register_push_token)
    NIM_SIGNALING_HPP_REQUEST(query_invitations)
    NIM_SIGNALING_HPP_REQUEST(update_channel)
#undef NIM_SIGNALING_HPP_REQUEST
    /* signalingSync takes `{}`. */
    std::future<Result> sync(const std::string &params_json = "{}")
    {
        return request_future(nim_signaling_sync, params_json);
    }
#endif

private:
    int32_t set(detail::Kind kind, detail::RegFn reg, EventHandler h)
    {
        if (!state_)
            return NIM_SIGNALING_INVALID_PARAM;
        detail::HandlerSlot &slot = state_->slots[kind];
        std::shared_ptr<const EventHandler> fn;
        if (h) {
            EventHandler *held = new (std::nothrow) EventHandler(std::move(h));
            if (!held)
                return NIM_SIGNALING_INTERNAL;
            fn.reset(held);
        }
        bool on = static_cast<bool>(fn);
        std::lock_guard<std::mutex> order(slot.reg_mu);
        {
            std::lock_guard<std::mutex> lock(slot.mu);
            fn.swap(slot.fn);
        }
        /* The slot outlives the registration (freed after client_free), so
         * registering it again, or NULL, is always safe. `fn` now holds the
         * previous handler, released when this returns: a call of it still
         * running keeps its own reference. */
        return reg(state_->handle, on ? detail::event_trampoline : nullptr,
                   on ? &slot : nullptr);
    }

    int32_t session(detail::SessionFn fn, ResultCallback cb)
    {
        nim_signaling_client *c = handle();
        return detail::start_with_callback(
            [c, fn](nim_signaling_result_cb r, void *ud) { return fn(c, r, ud); },
            std::move(cb));
    }

    int32_t request(detail::RequestFn fn, const std::string &params, ResultCallback cb)
    {
        nim_signaling_client *c = handle();
        const char *p = params.c_str();
        return detail::start_with_callback(
            [c, fn, p](nim_signaling_result_cb r, void *ud) { return fn(c, p, r, ud); },
            std::move(cb));
    }

#ifndef NIM_SIGNALING_HPP_NO_FUTURES
    std::future<Result> session_future(detail::SessionFn fn)
    {
        nim_signaling_client *c = handle();
        return detail::start_with_future(
            [c, fn](nim_signaling_result_cb r, void *ud) { return fn(c, r, ud); });
    }

    std::future<Result> request_future(detail::RequestFn fn, const std::string &params)
    {
        nim_signaling_client *c = handle();
        const char *p = params.c_str();
        return detail::start_with_future(
            [c, fn, p](nim_signaling_result_cb r, void *ud) { return fn(c, p, r, ud); });
    }
#endif

    detail::ClientState *state_ = nullptr;
};

/* A signaling server embedded in this process (a nim_signaling_server). */
class Server {
public:
    /* An empty server (url() is ""). */
    Server() noexcept = default;

    /* nim_signaling_server_start(config_json) ("{}": defaults, a free port
     * on 127.0.0.1). On success a running server and *code = 200;
     * otherwise an empty Server and *code = 414 (bad config) or 500
     * (cannot listen). */
    static Server start(const std::string &config_json = "{}", int32_t *code = nullptr)
    {
        Server s;
        int32_t rc = nim_signaling_server_start(config_json.c_str(), &s.handle_);
        if (rc != NIM_SIGNALING_OK)
            s.handle_ = nullptr;
        if (code)
            *code = rc;
        return s;
    }

    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;
    Server(Server &&other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
    Server &operator=(Server &&other) noexcept
    {
        if (this != &other) {
            stop();
            handle_ = other.handle_;
            other.handle_ = nullptr;
        }
        return *this;
    }
    ~Server() { stop(); }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    nim_signaling_server *handle() const noexcept { return handle_; }

    /* "ws://127.0.0.1:PORT" ("wss://..." with tls); "" when empty. */
    std::string url() const
    {
        const char *u = handle_ ? nim_signaling_server_url(handle_) : nullptr;
        return u ? u : "";
    }

    /* Stops the server (its connections drop), waits for it, frees it and
     * leaves this Server empty. */
    void stop() noexcept
    {
        nim_signaling_server *h = handle_;
        handle_ = nullptr;
        nim_signaling_server_stop(h);
    }

private:
    nim_signaling_server *handle_ = nullptr;
};

} // namespace nim_signaling

#endif /* NIM_SIGNALING_HPP */
