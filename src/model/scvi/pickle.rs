//! A Python pickle reader that builds values and never executes anything: classes and
//! functions (`GLOBAL`) stay names, calls (`REDUCE`, `NEWOBJ`) stay [`Value::Object`]s
//! holding their arguments, and what a pickle would set on them (`BUILD`, `SETITEMS`,
//! `APPENDS`) is kept beside. Protocols 2 to 5, the opcodes `torch.save` and pandas /
//! numpy objects use. Memo references are copied with a budget, so a small file cannot
//! expand into a huge value.

use std::collections::HashMap;

/// A value of the pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// A larger integer, its little-endian two's complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// A class or function by name, never looked up.
    Global(String, String),
    /// A persistent id (torch: a tensor's storage).
    PersId(Box<Value>),
    /// What `callable(*args)` would make, with what the pickle set on it afterwards.
    Object {
        /// The callable (usually a [`Value::Global`]).
        callable: Box<Value>,
        /// Its arguments (a tuple).
        args: Box<Value>,
        /// `BUILD`'s state.
        state: Option<Box<Value>>,
        /// Items set on it (`SETITEMS`: an OrderedDict).
        items: Vec<(Value, Value)>,
        /// Items appended to it.
        list: Vec<Value>,
    },
}

impl Value {
    /// The value of `key` in a dict or dict-like object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let items = match self {
            Value::Dict(items) => items,
            Value::Object { items, state, .. } => {
                if let Some(v) = items.iter().find(|(k, _)| k.as_str() == Some(key)) {
                    return Some(&v.1);
                }
                return state.as_deref().and_then(|s| s.get(key));
            }
            _ => return None,
        };
        items
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The entries of a dict or dict-like object.
    pub fn entries(&self) -> &[(Value, Value)] {
        match self {
            Value::Dict(items) | Value::Object { items, .. } => items,
            _ => &[],
        }
    }

    /// A string's text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer (booleans count as 0 and 1).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn items(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `module.name` when this is a global, or an object made by one.
    pub fn class_name(&self) -> Option<String> {
        match self {
            Value::Global(m, n) => Some(format!("{m}.{n}")),
            Value::Object { callable, .. } => callable.class_name(),
            _ => None,
        }
    }

    fn nodes(&self) -> usize {
        1 + match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => v.iter().map(Value::nodes).sum(),
            Value::Dict(kv) => kv.iter().map(|(k, v)| k.nodes() + v.nodes()).sum(),
            Value::PersId(v) => v.nodes(),
            Value::Object {
                callable,
                args,
                state,
                items,
                list,
            } => {
                callable.nodes()
                    + args.nodes()
                    + state.as_ref().map_or(0, |s| s.nodes())
                    + items
                        .iter()
                        .map(|(k, v)| k.nodes() + v.nodes())
                        .sum::<usize>()
                    + list.iter().map(Value::nodes).sum::<usize>()
            }
            _ => 0,
        }
    }
}

/// Most values a pickle may make, counting copies through the memo.
const MAX_NODES: usize = 50_000_000;

enum Slot {
    Mark,
    V(Value),
}

/// Reads a pickle. Errors say what is wrong, without the file name (the caller adds it).
pub fn read(data: &[u8]) -> Result<Value, String> {
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let mut budget = MAX_NODES;
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = at
            .checked_add(n)
            .and_then(|end| data.get(*at..end))
            .ok_or_else(|| format!("the pickle is cut short at byte {at}"))?;
        *at += n;
        Ok(s)
    };
    fn le(b: &[u8]) -> u64 {
        b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    }
    fn pop(stack: &mut Vec<Slot>) -> Result<Value, String> {
        match stack.pop() {
            Some(Slot::V(v)) => Ok(v),
            _ => Err("the pickle pops a value that is not there".into()),
        }
    }
    fn pop_mark(stack: &mut Vec<Slot>) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        loop {
            match stack.pop() {
                Some(Slot::V(v)) => out.push(v),
                Some(Slot::Mark) => break,
                None => return Err("the pickle has no mark where it needs one".into()),
            }
        }
        out.reverse();
        Ok(out)
    }
    fn top(stack: &mut [Slot]) -> Result<&mut Value, String> {
        match stack.last_mut() {
            Some(Slot::V(v)) => Ok(v),
            _ => Err("the pickle changes a value that is not there".into()),
        }
    }
    fn set_items(target: &mut Value, kv: Vec<Value>) -> Result<(), String> {
        let mut it = kv.into_iter();
        let mut pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        match target {
            Value::Dict(items) | Value::Object { items, .. } => {
                items.extend(pairs);
                Ok(())
            }
            _ => Err("the pickle sets items on something that is not a dict".into()),
        }
    }
    fn append(target: &mut Value, vs: Vec<Value>) -> Result<(), String> {
        match target {
            Value::List(l) | Value::Set(l) | Value::Object { list: l, .. } => {
                l.extend(vs);
                Ok(())
            }
            _ => Err("the pickle appends to something that is not a list".into()),
        }
    }
    let string = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| "a string in the pickle is not UTF-8".to_string())
    };
    loop {
        let op = *take(&mut at, 1)?.first().unwrap_or(&b'.');
        match op {
            0x80 => {
                take(&mut at, 1)?;
            }
            0x95 => {
                take(&mut at, 8)?;
            }
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Slot::Mark),
            b'}' => stack.push(Slot::V(Value::Dict(Vec::new()))),
            b']' => stack.push(Slot::V(Value::List(Vec::new()))),
            b')' => stack.push(Slot::V(Value::Tuple(Vec::new()))),
            0x8f => stack.push(Slot::V(Value::Set(Vec::new()))),
            b'N' => stack.push(Slot::V(Value::None)),
            0x88 => stack.push(Slot::V(Value::Bool(true))),
            0x89 => stack.push(Slot::V(Value::Bool(false))),
            b'J' => {
                let b = take(&mut at, 4)?;
                stack.push(Slot::V(Value::Int(i64::from(i32::from_le_bytes([
                    b[0], b[1], b[2], b[3],
                ])))));
            }
            b'K' => stack.push(Slot::V(Value::Int(i64::from(take(&mut at, 1)?[0])))),
            b'M' => stack.push(Slot::V(Value::Int(le(take(&mut at, 2)?) as i64))),
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    usize::from(take(&mut at, 1)?[0])
                } else {
                    le(take(&mut at, 4)?) as usize
                };
                let b = take(&mut at, n)?;
                let v = if n == 0 {
                    Value::Int(0)
                } else if n <= 8 {
                    let neg = b[n - 1] & 0x80 != 0;
                    let mut w = [if neg { 0xFF } else { 0 }; 8];
                    w[..n].copy_from_slice(b);
                    Value::Int(i64::from_le_bytes(w))
                } else {
                    Value::BigInt(b.to_vec())
                };
                stack.push(Slot::V(v));
            }
            b'G' => {
                let b = take(&mut at, 8)?;
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                stack.push(Slot::V(Value::Float(f64::from_be_bytes(w))));
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => le(take(&mut at, 4)?),
                    0x8c => u64::from(take(&mut at, 1)?[0]),
                    _ => le(take(&mut at, 8)?),
                } as usize;
                let s = string(take(&mut at, n)?)?;
                stack.push(Slot::V(Value::Str(s)));
            }
            b'T' | b'U' => {
                let n = if op == b'T' {
                    le(take(&mut at, 4)?)
                } else {
                    u64::from(take(&mut at, 1)?[0])
                } as usize;
                let s: String = take(&mut at, n)?.iter().map(|&c| char::from(c)).collect();
                stack.push(Slot::V(Value::Str(s)));
            }
            b'C' | b'B' | 0x8e | 0x96 => {
                let n = match op {
                    b'C' => u64::from(take(&mut at, 1)?[0]),
                    b'B' => le(take(&mut at, 4)?),
                    _ => le(take(&mut at, 8)?),
                } as usize;
                stack.push(Slot::V(Value::Bytes(take(&mut at, n)?.to_vec())));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(pop(&mut stack)?);
                }
                v.reverse();
                stack.push(Slot::V(Value::Tuple(v)));
            }
            b't' => {
                let v = pop_mark(&mut stack)?;
                stack.push(Slot::V(Value::Tuple(v)));
            }
            b'l' => {
                let v = pop_mark(&mut stack)?;
                stack.push(Slot::V(Value::List(v)));
            }
            b'd' => {
                let v = pop_mark(&mut stack)?;
                let mut d = Value::Dict(Vec::new());
                set_items(&mut d, v)?;
                stack.push(Slot::V(d));
            }
            0x91 => {
                let v = pop_mark(&mut stack)?;
                stack.push(Slot::V(Value::Set(v)));
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                set_items(top(&mut stack)?, vec![k, v])?;
            }
            b'u' => {
                let kv = pop_mark(&mut stack)?;
                set_items(top(&mut stack)?, kv)?;
            }
            b'a' => {
                let v = pop(&mut stack)?;
                append(top(&mut stack)?, vec![v])?;
            }
            b'e' | 0x90 => {
                let vs = pop_mark(&mut stack)?;
                append(top(&mut stack)?, vs)?;
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => u32::from(take(&mut at, 1)?[0]),
                    b'r' => le(take(&mut at, 4)?) as u32,
                    _ => memo.len() as u32,
                };
                let v = match stack.last() {
                    Some(Slot::V(v)) => v.clone(),
                    _ => return Err("the pickle memoises nothing".into()),
                };
                budget = budget
                    .checked_sub(v.nodes())
                    .ok_or("the pickle makes too many values")?;
                memo.insert(key, v);
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    u32::from(take(&mut at, 1)?[0])
                } else {
                    le(take(&mut at, 4)?) as u32
                };
                let v = memo.get(&key).ok_or_else(|| {
                    format!("the pickle refers to memo {key}, which it never set")
                })?;
                budget = budget
                    .checked_sub(v.nodes())
                    .ok_or("the pickle makes too many values")?;
                stack.push(Slot::V(v.clone()));
            }
            b'c' => {
                let mut line = || -> Result<String, String> {
                    let rest = &data[at.min(data.len())..];
                    let n = rest
                        .iter()
                        .position(|&c| c == b'\n')
                        .ok_or("a cut GLOBAL")?;
                    let s = string(&rest[..n])?;
                    at += n + 1;
                    Ok(s)
                };
                let (m, n) = (line()?, line()?);
                stack.push(Slot::V(Value::Global(m, n)));
            }
            0x93 => {
                let n = pop(&mut stack)?;
                let m = pop(&mut stack)?;
                match (m, n) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Slot::V(Value::Global(m, n))),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(Slot::V(Value::Object {
                    callable: Box::new(callable),
                    args: Box::new(args),
                    state: None,
                    items: Vec::new(),
                    list: Vec::new(),
                }));
            }
            0x92 => {
                let _kwargs = pop(&mut stack)?;
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(Slot::V(Value::Object {
                    callable: Box::new(callable),
                    args: Box::new(args),
                    state: None,
                    items: Vec::new(),
                    list: Vec::new(),
                }));
            }
            b'b' => {
                let s = pop(&mut stack)?;
                match top(&mut stack)? {
                    Value::Object { state, .. } => *state = Some(Box::new(s)),
                    Value::Dict(items) => {
                        if let Value::Dict(more) = s {
                            items.extend(more);
                        }
                    }
                    _ => {}
                }
            }
            b'Q' => {
                let id = pop(&mut stack)?;
                stack.push(Slot::V(Value::PersId(Box::new(id))));
            }
            b'0' => {
                stack.pop();
            }
            b'1' => {
                pop_mark(&mut stack)?;
            }
            b'2' => {
                let v = match stack.last() {
                    Some(Slot::V(v)) => v.clone(),
                    _ => return Err("the pickle duplicates nothing".into()),
                };
                budget = budget
                    .checked_sub(v.nodes())
                    .ok_or("the pickle makes too many values")?;
                stack.push(Slot::V(v));
            }
            other => {
                return Err(format!(
                    "the pickle uses opcode 0x{other:02x} at byte {}, which cellvae does not read",
                    at - 1
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps({'a': [1, 2.5, 'x'], 'b': (True, None), 'c': 300, 'd': -2}, protocol=2)`
    #[test]
    fn reads_plain_values() {
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03eX\x01\x00\x00\x00bq\x04\x88N\x86q\x05X\x01\x00\x00\x00cq\x06M,\x01X\x01\x00\x00\x00dq\x07J\xfe\xff\xff\xffu.";
        let v = read(p).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::List(vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::Str("x".into())
            ]))
        );
        assert_eq!(
            v.get("b"),
            Some(&Value::Tuple(vec![Value::Bool(true), Value::None]))
        );
        assert_eq!(v.get("c").and_then(Value::as_int), Some(300));
        assert_eq!(v.get("d").and_then(Value::as_int), Some(-2));
    }

    /// A reduce of `os.system` is a name and its arguments, never a call.
    #[test]
    fn never_calls_anything() {
        let p = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.";
        let v = read(p).unwrap();
        assert_eq!(v.class_name().as_deref(), Some("os.system"));
    }

    #[test]
    fn damaged_pickles_are_errors() {
        assert!(read(b"\x80\x02}").unwrap_err().contains("cut short"));
        assert!(read(b"\x80\x02h\x05.").unwrap_err().contains("memo 5"));
        assert!(read(b"\x80\x02\xff.").unwrap_err().contains("opcode 0xff"));
        assert!(read(b"\x80\x02s.").is_err());
    }

    /// A list memoised and fetched again and again cannot grow without bound.
    #[test]
    fn memo_copies_are_budgeted() {
        // [[0]*1000] then (memo get) x many: each copy counts its nodes.
        let mut p = b"\x80\x02]q\x00(".to_vec();
        for _ in 0..1000 {
            p.extend_from_slice(b"K\x00");
        }
        p.extend_from_slice(b"eq\x01(");
        for _ in 0..100_000 {
            p.extend_from_slice(b"h\x01");
        }
        p.extend_from_slice(b"l.");
        assert!(read(&p).unwrap_err().contains("too many values"));
    }
}
