#!/usr/bin/env python3
"""What SQLite's FTS5 index (the messages_fts of migrations/sqlite) adds to a single
writer's commit latency, with no chatd around it: 20,000 one-row transactions into a
table with the same FTS5 configuration (external content, unicode61, detail=none, prefix
2 3 4), printing p50/p99/p999/max and the commits over 5 and 10 ms. Arguments are FTS5
options to set first, e.g. `automerge=8 crisismerge=64`; `--no-fts` times the same inserts
without the index (docs/benchmarks.md, session 20).
Usage: python3 scripts/fts5-merge-tail.py [--no-fts | option=value ...]
"""
import sqlite3, time, os, random, string, sys
no_fts = '--no-fts' in sys.argv[1:]
opts = [a for a in sys.argv[1:] if a != '--no-fts']
fn = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'target', 'fts5-merge-tail.db')
for ext in ('', '-wal', '-shm'):
    try: os.unlink(fn + ext)
    except FileNotFoundError: pass
c = sqlite3.connect(fn, isolation_level=None)
c.execute('pragma journal_mode=wal'); c.execute('pragma synchronous=normal')
c.execute('create table messages (id integer primary key, content text)')
if not no_fts:
  c.execute("""create virtual table messages_fts using fts5(content, content='messages', content_rowid='id',
  tokenize='unicode61 remove_diacritics 2', detail=none, prefix='2 3 4')""")
  c.execute("create trigger t after insert on messages begin insert into messages_fts(rowid, content) values (new.id, new.content); end")
for o in opts:
    k, v = o.split('=')
    c.execute("insert into messages_fts(messages_fts, rank) values (?, ?)", (k, int(v)))
random.seed(7)
words = [''.join(random.choice(string.ascii_lowercase) for _ in range(random.randint(3, 9))) for _ in range(2000)]
ts = []
t0 = time.perf_counter()
for k in range(20000):
    content = f"load message {k} " + ' '.join(random.choice(words) for _ in range(8))
    t = time.perf_counter()
    c.execute('begin'); c.execute('insert into messages (content) values (?)', (content,)); c.execute('commit')
    ts.append((time.perf_counter() - t) * 1000)
total = time.perf_counter() - t0
s = sorted(ts); n = len(s)
print('no FTS' if no_fts else ' '.join(opts) or 'default', 'p50 %.3f p99 %.3f p999 %.2f max %.2f ms; >5ms %d >10ms %d; total %.1f s' % (s[n//2], s[int(n*.99)], s[int(n*.999)], s[-1], sum(1 for x in ts if x > 5), sum(1 for x in ts if x > 10), total))
for ext in ('', '-wal', '-shm'):
    try: os.unlink(fn + ext)
    except FileNotFoundError: pass
