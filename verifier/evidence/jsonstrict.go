package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of the JSON documents we parse (ID token
// headers and claims, discovery documents, key sets).
const maxJSONDepth = 32

// decodeObject parses b, which must be exactly one JSON object, strictly:
// valid UTF-8, no member name twice in any object, nesting at most
// maxJSONDepth, nothing after the object. Numbers are kept as json.Number,
// so no precision is lost. Member names are matched exactly by the callers
// (a map, never a struct, whose field matching is case-insensitive).
func decodeObject(b []byte) (map[string]any, error) {
	if err := checkJSON(b); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// checkJSON checks that b is a single JSON value, valid UTF-8, without a
// repeated member name in any object and nested at most maxJSONDepth deep.
func checkJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("JSON is not valid UTF-8")
	}
	type frame struct {
		object bool
		keys   map[string]struct{}
		key    bool // an object expecting a member name (or its end)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*frame
	values := 0
	done := func() {
		if len(stack) == 0 {
			values++
		} else if top := stack[len(stack)-1]; top.object {
			top.key = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 || values != 1 {
				return errors.New("truncated JSON")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("bad JSON: %w", err)
		}
		if len(stack) == 0 && values > 0 {
			return errors.New("data after the JSON value")
		}
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; top.object && top.key {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					done()
					continue
				}
				k, ok := tok.(string)
				if !ok {
					return errors.New("bad JSON: member name is not a string")
				}
				if _, dup := top.keys[k]; dup {
					return fmt.Errorf("JSON member %s appears twice", clip(k))
				}
				top.keys[k] = struct{}{}
				top.key = false
				continue
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]struct{}{}, key: t == '{'})
			case '}', ']':
				if len(stack) == 0 {
					return errors.New("bad JSON")
				}
				stack = stack[:len(stack)-1]
				done()
			}
		default:
			done()
		}
	}
}
