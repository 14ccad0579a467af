package channel

import "container/list"

// cache is a bounded LRU of records that also tracks which ones carry
// writes not yet durable. Such "dirty" records are pinned (never evicted):
// the store may not hold them yet, so the cache is their only copy for
// reads until the entry that wrote them is acknowledged.
type cache[K comparable, V any] struct {
	max   int
	items map[K]*list.Element
	lru   list.List    // front = most recently used
	dirty map[K]uint64 // key → index of the entry that last wrote it
}

type cacheItem[K comparable, V any] struct {
	key K
	val V
}

func newCache[K comparable, V any](max int) *cache[K, V] {
	return &cache[K, V]{max: max, items: make(map[K]*list.Element), dirty: make(map[K]uint64)}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	if e, ok := c.items[k]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cacheItem[K, V]).val, true
	}
	var zero V
	return zero, false
}

// put stores a clean record read from the store.
func (c *cache[K, V]) put(k K, v V) {
	if e, ok := c.items[k]; ok {
		e.Value.(*cacheItem[K, V]).val = v
		c.lru.MoveToFront(e)
		return
	}
	c.items[k] = c.lru.PushFront(&cacheItem[K, V]{key: k, val: v})
	c.evict()
}

// write stores a record changed by the entry with the given index.
func (c *cache[K, V]) write(k K, v V, index uint64) {
	c.dirty[k] = index
	c.put(k, v)
}

// committed unpins records whose last write is durable.
func (c *cache[K, V]) committed(index uint64) {
	for k, i := range c.dirty {
		if i <= index {
			delete(c.dirty, k)
		}
	}
	c.evict()
}

func (c *cache[K, V]) evict() {
	for e := c.lru.Back(); e != nil && len(c.items) > c.max; {
		prev := e.Prev()
		it := e.Value.(*cacheItem[K, V])
		if _, pinned := c.dirty[it.key]; !pinned {
			c.lru.Remove(e)
			delete(c.items, it.key)
		}
		e = prev
	}
}

// eachDirty calls fn for every pinned record.
func (c *cache[K, V]) eachDirty(fn func(K, V)) {
	for k := range c.dirty {
		fn(k, c.items[k].Value.(*cacheItem[K, V]).val)
	}
}

func (c *cache[K, V]) isDirty(k K) bool {
	_, ok := c.dirty[k]
	return ok
}

func (c *cache[K, V]) len() int { return len(c.items) }

// dropIf forgets every record whose key matches, pinned or not: for keys
// an entry deletes by range, which the cache cannot follow key by key.
func (c *cache[K, V]) dropIf(match func(K) bool) {
	for k, e := range c.items {
		if match(k) {
			c.lru.Remove(e)
			delete(c.items, k)
			delete(c.dirty, k)
		}
	}
}
