//! Where each piece of state lives in Redis: the key names and their hash
//! tags. A Redis Cluster runs a script only when every key it touches is
//! in one slot, so each key carries a hash tag (`{...}`) naming what it
//! belongs to, and each script touches the keys of one tag:
//!
//! - a room bucket: `P{<bucket tag>}<what>` (its rooms, the names they hold,
//!   their forget times and timers). A room's bucket is fixed by its
//!   channelId's first byte, and a name's bucket by the name, and the
//!   channelId of a room created under a name starts with that name's
//!   bucket: so claiming a name and writing its room is one script;
//! - an account, in the bucket of its name: `P{<bucket tag>}a<length of
//!   the account>:<account>:<what>` (its log, head, cursors, presence,
//!   push tokens, retry records, the index of its rooms). So the room of a
//!   1:1 call, placed in its callee's bucket, shares the callee's slot,
//!   and the room's write appends the callee's events in the same script;
//! - a node: `P{n:<node>}<what>` (its liveness key, its sessions, its
//!   wake-up channel);
//! - a few keys of the whole system, untagged (the node list, the log-size
//!   gauge), touched once a second per node, never per request.
//!
//! On a single Redis the tags change nothing; every key sits on the one
//! server and the same scripts run.

/// Room buckets. Enough that the rooms spread evenly over the masters of a
/// cluster (each bucket's tag is chosen to fall in its own 1/64th of the
/// slot space, see [`Keys::new`]); few enough that the per-bucket work
/// every node polls (timers, the sweeper, the epoch check) stays small.
pub const BUCKETS: usize = 64;

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The slot Redis Cluster puts a key in (CRC16/XMODEM of its hash tag).
pub fn slot(key: &str) -> u16 {
    let k = key.as_bytes();
    let tagged = k.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &k[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(k)) % SLOTS
}

/// Whether `s` has the form of a channelId this store hands out: 32
/// lowercase hex digits.
pub fn is_room_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The bucket of a room by its channelId: the first byte's low six bits
/// for ids this store made, a hash for any other string (which names no
/// room: the lookup then finds nothing, as it should).
pub fn bucket_of_id(id: &str) -> usize {
    match u8::from_str_radix(id.get(..2).unwrap_or(""), 16) {
        Ok(b) if is_room_id(id) => b as usize % BUCKETS,
        _ => crc16::State::<crc16::XMODEM>::calculate(id.as_bytes()) as usize % BUCKETS,
    }
}

/// The bucket of a channelName. A name that has the form of a channelId
/// (a room created without a name is named by its id) is in that id's
/// bucket, so both lookups of such a room meet in one bucket.
pub fn bucket_of_name(name: &str) -> usize {
    bucket_of_id(name)
}

/// The bucket of an account's keys: that of its name.
pub fn bucket_of_account(account: &str) -> usize {
    bucket_of_name(account)
}

/// The channelId for a new room named `name` (None: named by its id), made
/// from `unique` (32 hex digits): its first byte becomes the name's bucket,
/// or for a room named by its id, `near`'s (an account's bucket, see
/// [`Keys::acct`]) when given.
pub fn room_id(name: Option<&str>, near: Option<&str>, unique: &str) -> String {
    let tail = unique.get(2..).filter(|_| is_room_id(unique));
    let Some(tail) = tail else {
        return unique.to_string();
    };
    let bucket = match (name, near) {
        (Some(n), _) => bucket_of_name(n),
        (None, Some(account)) => bucket_of_account(account),
        (None, None) => bucket_of_id(unique),
    };
    format!("{bucket:02x}{tail}")
}

/// The key names of one system (one prefix).
pub struct Keys {
    /// The prefix, ending in ':'.
    p: String,
    /// The hash tag of each bucket.
    tags: Vec<String>,
}

impl Keys {
    /// Keys under `prefix` (without its ':'). Each bucket's tag is the first
    /// `b<i>.<k>` whose slot falls in the bucket's own 1/64th of the slot
    /// space, so that a cluster whose masters own equal slot ranges (what
    /// `redis-cli --cluster create` makes) holds equal shares of buckets.
    pub fn new(prefix: &str) -> Keys {
        let width = SLOTS as usize / BUCKETS;
        let tags = (0..BUCKETS)
            .map(|i| {
                (0u32..)
                    .map(|k| format!("b{i}.{k}"))
                    .find(|t| slot(&format!("{{{t}}}")) as usize / width == i)
                    .unwrap_or_default()
            })
            .collect();
        Keys {
            p: format!("{prefix}:"),
            tags,
        }
    }

    /// One of an account's keys, in its bucket's slot. The account's
    /// length in front keeps any two (account, what) pairs apart.
    pub fn acct(&self, account: &str, what: &str) -> String {
        let len = account.len();
        self.bucket(
            bucket_of_account(account),
            &format!("a{len}:{account}:{what}"),
        )
    }

    /// The retry records of one client instance of a device of an account
    /// (a new instance starts with none; the old one's expire). The device
    /// id and instance are hex encoded: raw, a '}' or ':' in them could make
    /// two (account, device, instance) triples spell one key.
    pub fn requests(&self, account: &str, device: &str, instance: &str) -> String {
        self.acct(
            account,
            &format!("req:{}:{}", hex::encode(device), hex::encode(instance)),
        )
    }

    /// One of a bucket's keys.
    pub fn bucket(&self, bucket: usize, what: &str) -> String {
        format!("{}{{{}}}{what}", self.p, self.tags[bucket % BUCKETS])
    }

    /// A room by channelId.
    pub fn room(&self, id: &str) -> String {
        self.bucket(bucket_of_id(id), &format!("room:{id}"))
    }

    /// A room's outbox (its events not yet forwarded to the accounts'
    /// logs), in the room's slot.
    pub fn outbox(&self, id: &str) -> String {
        self.bucket(bucket_of_id(id), &format!("out:{id}"))
    }

    /// What a bucket's room keys start with (a script that reads a name
    /// key and then the room it names builds the room's key from this).
    pub fn room_prefix(&self, bucket: usize) -> String {
        self.bucket(bucket, "room:")
    }

    /// The key naming the valid room that holds a channelName.
    pub fn name(&self, name: &str) -> String {
        self.bucket(bucket_of_name(name), &format!("name:{name}"))
    }

    /// One of a node's keys.
    pub fn node(&self, node: &str, what: &str) -> String {
        let (before, after) = self.node_around(what);
        format!("{before}{node}{after}")
    }

    /// What a node's key `what` has before and after the node's id (for a
    /// script that builds the keys of nodes it learns of).
    pub fn node_around(&self, what: &str) -> (String, String) {
        (format!("{}{{n:", self.p), format!("}}{what}"))
    }

    /// A key of the whole system.
    pub fn global(&self, what: &str) -> String {
        format!("{}{what}", self.p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_follows_redis_cluster() {
        // Values from the Redis Cluster specification's examples.
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_ne!(
            slot("{}x"),
            slot("{}y"),
            "an empty tag hashes the whole key"
        );
    }

    #[test]
    fn a_named_room_and_its_name_share_a_slot() {
        let k = Keys::new("nim");
        let unique = format!("{:032x}", 0x1234_5678_9abc_def0_u128 * 977);
        for name in ["room-1", "会议室", "x}y{z", &unique] {
            let id = room_id(Some(name), Some("bob"), &unique);
            assert!(is_room_id(&id));
            assert_eq!(slot(&k.room(&id)), slot(&k.name(name)), "{name}");
        }
        // Named by its own id.
        let id = room_id(None, None, &unique);
        assert_eq!(slot(&k.room(&id)), slot(&k.name(&id)));
    }

    #[test]
    fn a_room_placed_near_an_account_shares_its_slot() {
        let k = Keys::new("nim");
        let unique = format!("{:032x}", 0x0fed_cba9_8765_4321_u128 * 31);
        for account in ["bob", "alice", "用户", "x}y{z", &unique] {
            let id = room_id(None, Some(account), &unique);
            assert!(is_room_id(&id));
            let room = slot(&k.room(&id));
            assert_eq!(room, slot(&k.name(&id)), "{account}");
            assert_eq!(room, slot(&k.acct(account, "log")), "{account}");
            assert_eq!(room, slot(&k.bucket(bucket_of_id(&id), "timers")));
        }
    }

    #[test]
    fn buckets_cover_the_slot_space_evenly() {
        let k = Keys::new("nim");
        let width = SLOTS as usize / BUCKETS;
        for b in 0..BUCKETS {
            assert_eq!(slot(&k.bucket(b, "gc")) as usize / width, b);
        }
    }

    #[test]
    fn account_keys_share_the_account_slot_and_never_collide() {
        let k = Keys::new("nim");
        assert_eq!(
            slot(&k.acct("alice", "log")),
            slot(&k.requests("alice", "d}1", "i1"))
        );
        assert_ne!(
            k.requests("x}req:y", "z", "i"),
            k.requests("x", "y}req:z", "i")
        );
        assert_ne!(k.requests("a", "d:1", "2"), k.requests("a", "d", "1:2"));
        assert_ne!(k.acct("x", "y:log"), k.acct("x:y", "log"));
        // Nor with a bucket's own keys, whatever the account is called.
        for what in [
            "rooms", "gc", "timers", "outdue", "epoch", "room:a1", "name:a1", "out:a1",
        ] {
            assert!(!k.bucket(0, what).contains("}a"), "{what}");
        }
    }
}
