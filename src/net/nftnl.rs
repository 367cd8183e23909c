//! Adds and deletes elements of berth's nftables sets and maps over netlink (`NETLINK_NETFILTER`),
//! in one transaction, without starting the `nft` binary: publishing ports (per container) and
//! creating or removing a network are element changes only, so they cost a netlink round trip
//! instead of a process. Also berth's two rules in Docker's `DOCKER-USER` chain (inserted with a
//! root's first network, deleted with its last). The table's skeleton (sets, maps, chains, rules)
//! is written by `nft` with JSON (see [`super::firewall`]).

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_DUMP: u16 = 0x300;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFPROTO_IPV4: u8 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NF_ACCEPT: u32 = 1;
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

/// One set or map element: the key as the kernel stores it (each concatenated field padded to 4
/// bytes), the end of its range for sets of ranges (empty otherwise) and, for maps, its data
/// (empty for sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub map: &'static str,
    pub key: Vec<u8>,
    pub key_end: Vec<u8>,
    pub data: Vec<u8>,
}

/// Appends an attribute, padded to 4 bytes.
fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn nested(buf: &mut Vec<u8>, ty: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    attr(buf, ty | NLA_F_NESTED, &inner);
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// One netlink message with the nfgenmsg header.
fn message(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) {
    let len = 16 + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

/// The transaction that adds (or deletes) `elems` in table `inet <table>`, and deletes the rules
/// `docker_user` (handles) of Docker's `DOCKER-USER` chain.
fn batch(table: &str, add: bool, elems: &[Elem], docker_user: &[u64], seq0: u32) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut acks = Vec::new();
    let mut seq = seq0;
    message(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    let mut maps: Vec<&'static str> = elems.iter().map(|e| e.map).collect();
    maps.sort();
    maps.dedup();
    for map in maps {
        seq += 1;
        let mut attrs = Vec::new();
        attr(&mut attrs, NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
        attr(&mut attrs, NFTA_SET_ELEM_LIST_SET, &cstr(map));
        nested(&mut attrs, NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
            for e in elems.iter().filter(|e| e.map == map) {
                nested(list, NFTA_LIST_ELEM, |el| {
                    nested(el, NFTA_SET_ELEM_KEY, |k| attr(k, NFTA_DATA_VALUE, &e.key));
                    if !e.key_end.is_empty() {
                        nested(el, NFTA_SET_ELEM_KEY_END, |k| attr(k, NFTA_DATA_VALUE, &e.key_end));
                    }
                    if add && !e.data.is_empty() {
                        nested(el, NFTA_SET_ELEM_DATA, |d| attr(d, NFTA_DATA_VALUE, &e.data));
                    }
                });
            }
        });
        let (ty, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
        };
        message(&mut out, (NFNL_SUBSYS_NFTABLES << 8) | ty, flags, seq, NFPROTO_INET, 0, &attrs);
        acks.push(seq);
    }
    rule_deletes(&mut out, &mut seq, &mut acks, docker_user);
    seq += 1;
    message(&mut out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    (out, acks)
}

/// Appends the deletion of the `DOCKER-USER` rules `handles` to a transaction.
fn rule_deletes(out: &mut Vec<u8>, seq: &mut u32, acks: &mut Vec<u32>, handles: &[u64]) {
    for h in handles {
        *seq += 1;
        let mut a = Vec::new();
        attr(&mut a, NFTA_RULE_TABLE, &cstr(DOCKER_TABLE));
        attr(&mut a, NFTA_RULE_CHAIN, &cstr(DOCKER_CHAIN));
        attr(&mut a, NFTA_RULE_HANDLE, &h.to_be_bytes());
        message(out, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE, NLM_F_REQUEST | NLM_F_ACK, *seq, NFPROTO_IPV4, 0, &a);
        acks.push(*seq);
    }
}

/// Adds (`add`) or deletes the elements in one transaction: all or none apply.
pub fn apply(table: &str, add: bool, elems: &[Elem]) -> io::Result<()> {
    apply_and_delete_rules(table, add, elems, &[])
}

/// [`apply`], in the same transaction deleting the `DOCKER-USER` rules `docker_user` (handles):
/// a transaction that deletes waits for the kernel (a grace period), so one is cheaper than two.
pub fn apply_and_delete_rules(table: &str, add: bool, elems: &[Elem], docker_user: &[u64]) -> io::Result<()> {
    if elems.is_empty() && docker_user.is_empty() {
        return Ok(());
    }
    let seq0: u32 = rand::random::<u32>() >> 1;
    let (msg, waiting) = batch(table, add, elems, docker_user, seq0);
    exchange(&msg, waiting, false).map(|_| ())
}

fn open() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// Sends `msg` and reads until every sequence number in `waiting` is acknowledged (or, for a
/// dump, until its end), returning the payloads (after the nfgenmsg header) of the other
/// messages received. A refusal is the kernel's errno.
fn exchange(msg: &[u8], mut waiting: Vec<u32>, dump: bool) -> io::Result<Vec<Vec<u8>>> {
    let socket = open()?;
    socket.send(msg, 0)?;
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    while !waiting.is_empty() {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
            let flags = u16::from_ne_bytes(buf[off + 6..off + 8].try_into().expect("2 bytes"));
            let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
            if len < 16 || off + len > n {
                break;
            }
            if ty == NLMSG_ERROR && off + 20 <= n {
                let code = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4 bytes"));
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                waiting.retain(|s| *s != seq);
            } else if ty == NLMSG_DONE {
                waiting.retain(|s| *s != seq);
            } else if len >= 20 {
                out.push(buf[off + 20..off + len].to_vec());
                if dump && flags & NLM_F_MULTI == 0 {
                    waiting.retain(|s| *s != seq);
                }
            }
            off += len.next_multiple_of(4);
        }
    }
    Ok(out)
}

/// The attributes of a message payload, as (type without flags, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

const DOCKER_TABLE: &str = "filter";
const DOCKER_CHAIN: &str = "DOCKER-USER";

/// `<meta iifname|oifname> "<prefix>*" accept`, commented `comment`.
fn wildcard_accept(buf: &mut Vec<u8>, key: u32, prefix: &str, comment: &str) {
    attr(buf, NFTA_RULE_TABLE, &cstr(DOCKER_TABLE));
    attr(buf, NFTA_RULE_CHAIN, &cstr(DOCKER_CHAIN));
    nested(buf, NFTA_RULE_EXPRESSIONS, |list| {
        let expr = |list: &mut Vec<u8>, name: &str, fill: &dyn Fn(&mut Vec<u8>)| {
            nested(list, NFTA_LIST_ELEM, |e| {
                attr(e, NFTA_EXPR_NAME, &cstr(name));
                nested(e, NFTA_EXPR_DATA, |d| fill(d));
            })
        };
        expr(list, "meta", &|d| {
            attr(d, 1, &NFT_REG_1.to_be_bytes()); // NFTA_META_DREG
            attr(d, 2, &key.to_be_bytes()); // NFTA_META_KEY
        });
        expr(list, "cmp", &|d| {
            attr(d, 1, &NFT_REG_1.to_be_bytes()); // NFTA_CMP_SREG
            attr(d, 2, &NFT_CMP_EQ.to_be_bytes()); // NFTA_CMP_OP
            nested(d, 3, |v| attr(v, NFTA_DATA_VALUE, prefix.as_bytes())); // NFTA_CMP_DATA
        });
        expr(list, "immediate", &|d| {
            attr(d, 1, &NFT_REG_VERDICT.to_be_bytes()); // NFTA_IMMEDIATE_DREG
            nested(d, 2, |v| {
                // NFTA_IMMEDIATE_DATA
                nested(v, NFTA_DATA_VERDICT, |c| attr(c, NFTA_VERDICT_CODE, &NF_ACCEPT.to_be_bytes()))
            });
        });
    });
    let mut udata = vec![NFTNL_UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
    udata.extend_from_slice(&cstr(comment));
    attr(buf, NFTA_RULE_USERDATA, &udata);
}

/// Handles of the rules in Docker's `ip filter DOCKER-USER` chain whose comment is `comment`, or
/// `None` when that chain does not exist (Docker is not installed or not running).
pub fn docker_user_handles(comment: &str) -> io::Result<Option<Vec<u64>>> {
    let mut a = Vec::new();
    attr(&mut a, NFTA_RULE_TABLE, &cstr(DOCKER_TABLE));
    attr(&mut a, NFTA_RULE_CHAIN, &cstr(DOCKER_CHAIN));
    let seq: u32 = rand::random::<u32>() >> 1;
    let mut msg = Vec::new();
    message(&mut msg, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_IPV4, 0, &a);
    let rules = match exchange(&msg, vec![seq], true) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut found_chain = false;
    let mut handles = Vec::new();
    let tag = cstr(comment);
    for r in &rules {
        let a = attrs(r);
        let get = |t: u16| a.iter().find(|(ty, _)| *ty == t).map(|(_, v)| *v);
        if get(NFTA_RULE_TABLE) != Some(&cstr(DOCKER_TABLE)[..]) || get(NFTA_RULE_CHAIN) != Some(&cstr(DOCKER_CHAIN)[..]) {
            continue;
        }
        found_chain = true;
        let ours = get(NFTA_RULE_USERDATA).is_some_and(|u| u.windows(tag.len()).any(|w| w == tag));
        if let (true, Some(h)) = (ours, get(NFTA_RULE_HANDLE)) {
            if h.len() == 8 {
                handles.push(u64::from_be_bytes(h.try_into().expect("8 bytes")));
            }
        }
    }
    if found_chain || chain_exists()? { Ok(Some(handles)) } else { Ok(None) }
}

/// How many rules the table `inet <table>` holds, or `None` when there is no such table (deleted,
/// or never written). A table that is there with fewer rules than berth wrote was flushed.
pub fn table_rule_count(table: &str) -> io::Result<Option<usize>> {
    const NFT_MSG_GETTABLE: u16 = 1;
    let mut a = Vec::new();
    attr(&mut a, 1, &cstr(table)); // NFTA_TABLE_NAME
    let seq: u32 = rand::random::<u32>() >> 1;
    let mut msg = Vec::new();
    message(&mut msg, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_INET, 0, &a);
    match exchange(&msg, vec![seq], false) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut a = Vec::new();
    attr(&mut a, NFTA_RULE_TABLE, &cstr(table));
    let seq: u32 = rand::random::<u32>() >> 1;
    let mut msg = Vec::new();
    message(&mut msg, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_INET, 0, &a);
    let rules = match exchange(&msg, vec![seq], true) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let name = cstr(table);
    Ok(Some(rules.iter().filter(|r| attrs(r).iter().any(|(t, v)| *t == NFTA_RULE_TABLE && *v == &name[..])).count()))
}

/// Whether Docker's `ip filter DOCKER-USER` chain exists (an empty chain dumps no rule).
fn chain_exists() -> io::Result<bool> {
    const NFT_MSG_GETCHAIN: u16 = 4;
    let mut a = Vec::new();
    attr(&mut a, 1, &cstr(DOCKER_TABLE)); // NFTA_CHAIN_TABLE
    attr(&mut a, 3, &cstr(DOCKER_CHAIN)); // NFTA_CHAIN_NAME
    let seq: u32 = rand::random::<u32>() >> 1;
    let mut msg = Vec::new();
    message(&mut msg, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN, NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_IPV4, 0, &a);
    match exchange(&msg, vec![seq], false) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// In one transaction, deletes the `DOCKER-USER` rules `delete` (handles) and, with `insert`,
/// inserts `iifname "<prefix>*" accept` and `oifname "<prefix>*" accept` at its top, commented
/// `comment`.
pub fn docker_user_update(delete: &[u64], insert: Option<&str>, comment: &str) -> io::Result<()> {
    let seq0: u32 = rand::random::<u32>() >> 1;
    let mut seq = seq0;
    let mut msg = Vec::new();
    let mut acks = Vec::new();
    message(&mut msg, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    rule_deletes(&mut msg, &mut seq, &mut acks, delete);
    if let Some(prefix) = insert {
        // Each is inserted at the top: the oifname rule ends up second.
        for key in [NFT_META_OIFNAME, NFT_META_IIFNAME] {
            seq += 1;
            let mut a = Vec::new();
            wildcard_accept(&mut a, key, prefix, comment);
            message(
                &mut msg,
                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
                seq,
                NFPROTO_IPV4,
                0,
                &a,
            );
            acks.push(seq);
        }
    }
    if acks.is_empty() {
        return Ok(());
    }
    seq += 1;
    message(&mut msg, NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    exchange(&msg, acks, false).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_layout() {
        let e = Elem { map: "p4any_a", key: vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0], key_end: vec![], data: vec![10, 210, 0, 2] };
        let (b, acks) = batch("berth-x", true, &[e], &[], 7);
        assert_eq!(acks, vec![8]);
        // begin (20 bytes), the element message, end (20 bytes).
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), NFNL_MSG_BATCH_BEGIN);
        let len = u32::from_ne_bytes(b[20..24].try_into().unwrap()) as usize;
        assert_eq!(u16::from_ne_bytes([b[24], b[25]]), (10 << 8) | 12);
        assert_eq!(b.len(), 20 + len + 20);
        assert_eq!(len % 4, 0);
    }
}
