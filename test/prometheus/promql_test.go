package prometheus

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	dto "github.com/prometheus/client_model/go"
)

// This file holds a small evaluator of instant PromQL queries, enough to run the LoginLink
// alerts against the series the manager exports without a Prometheus server. It supports
// numbers, time(), vector selectors with label matchers, + - * / between a vector and a
// scalar or two scalars, comparisons (filtering) between a vector and a scalar, parentheses,
// and the set operators and, unless and or, with or without on(...). Anything else fails
// loudly rather than being evaluated wrongly; it follows Prometheus's precedence:
// or < and, unless < comparisons < + - < * /.

type sample struct {
	labels map[string]string
	value  float64
}

type value struct {
	isScalar bool
	scalar   float64
	vector   []sample
}

// series converts gathered metric families into samples (gauges and counters only).
func series(families []*dto.MetricFamily) []sample {
	var out []sample
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			default:
				continue
			}
			l := map[string]string{"__name__": f.GetName()}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out = append(out, sample{labels: l, value: v})
		}
	}
	return out
}

type evalError struct{ msg string }

type evaluator struct {
	toks []string
	pos  int
	now  float64
	data []sample
}

// evalInstant evaluates expr at time now (Unix seconds) over data.
func evalInstant(expr string, now float64, data []sample) (v value, err error) {
	toks, err := lex(expr)
	if err != nil {
		return value{}, err
	}
	e := &evaluator{toks: toks, now: now, data: data}
	defer func() {
		if r := recover(); r != nil {
			ee, ok := r.(evalError)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s (at token %d of %q)", ee.msg, e.pos, expr)
		}
	}()
	v = e.or()
	if e.pos != len(e.toks) {
		e.fail("unexpected %q", e.toks[e.pos])
	}
	return v, nil
}

func (e *evaluator) fail(format string, args ...any) {
	panic(evalError{fmt.Sprintf(format, args...)})
}

func (e *evaluator) peek() string {
	if e.pos < len(e.toks) {
		return e.toks[e.pos]
	}
	return ""
}

func (e *evaluator) next() string {
	t := e.peek()
	if t == "" {
		e.fail("unexpected end of expression")
	}
	e.pos++
	return t
}

func (e *evaluator) expect(t string) {
	if got := e.next(); got != t {
		e.fail("got %q, want %q", got, t)
	}
}

func (e *evaluator) or() value {
	l := e.andUnless()
	for e.peek() == "or" {
		e.next()
		on := e.onLabels()
		l = e.setOp("or", on, l, e.andUnless())
	}
	return l
}

func (e *evaluator) andUnless() value {
	l := e.comparison()
	for e.peek() == "and" || e.peek() == "unless" {
		op := e.next()
		on := e.onLabels()
		l = e.setOp(op, on, l, e.comparison())
	}
	return l
}

var comparisons = map[string]func(a, b float64) bool{
	"==": func(a, b float64) bool { return a == b },
	"!=": func(a, b float64) bool { return a != b },
	"<":  func(a, b float64) bool { return a < b },
	">":  func(a, b float64) bool { return a > b },
	"<=": func(a, b float64) bool { return a <= b },
	">=": func(a, b float64) bool { return a >= b },
}

func (e *evaluator) comparison() value {
	l := e.additive()
	for comparisons[e.peek()] != nil {
		cmp := comparisons[e.next()]
		if t := e.peek(); t == "bool" || t == "on" || t == "ignoring" || t == "group_left" || t == "group_right" {
			e.fail("comparison modifier %q is not supported", t)
		}
		r := e.additive()
		switch {
		case l.isScalar && r.isScalar:
			e.fail("a comparison of two scalars needs bool, which is not supported")
		case !l.isScalar && !r.isScalar:
			e.fail("a comparison of two vectors is not supported")
		case r.isScalar:
			l = value{vector: filter(l.vector, func(v float64) bool { return cmp(v, r.scalar) })}
		default:
			l = value{vector: filter(r.vector, func(v float64) bool { return cmp(l.scalar, v) })}
		}
	}
	return l
}

func filter(in []sample, keep func(float64) bool) []sample {
	var out []sample
	for _, s := range in {
		if keep(s.value) {
			out = append(out, s)
		}
	}
	return out
}

func (e *evaluator) additive() value {
	l := e.multiplicative()
	for e.peek() == "+" || e.peek() == "-" {
		op := e.next()
		l = e.arith(op, l, e.multiplicative())
	}
	return l
}

func (e *evaluator) multiplicative() value {
	l := e.primary()
	for e.peek() == "*" || e.peek() == "/" {
		op := e.next()
		l = e.arith(op, l, e.primary())
	}
	return l
}

func (e *evaluator) arith(op string, l, r value) value {
	f := func(a, b float64) float64 {
		switch op {
		case "+":
			return a + b
		case "-":
			return a - b
		case "*":
			return a * b
		default:
			return a / b
		}
	}
	switch {
	case l.isScalar && r.isScalar:
		return value{isScalar: true, scalar: f(l.scalar, r.scalar)}
	case !l.isScalar && !r.isScalar:
		e.fail("arithmetic between two vectors is not supported")
	}
	var out []sample
	vec, s := l.vector, r.scalar
	if l.isScalar {
		vec, s = r.vector, l.scalar
	}
	for _, x := range vec {
		labels := map[string]string{}
		for k, v := range x.labels {
			if k != "__name__" { // arithmetic drops the metric name
				labels[k] = v
			}
		}
		res := f(x.value, s)
		if l.isScalar {
			res = f(s, x.value)
		}
		out = append(out, sample{labels: labels, value: res})
	}
	return value{vector: out}
}

// onLabels reads an optional on(...) after a set operator; nil means "all labels but the name".
func (e *evaluator) onLabels() []string {
	switch e.peek() {
	case "ignoring", "group_left", "group_right":
		e.fail("%q is not supported", e.peek())
	case "on":
	default:
		return nil
	}
	e.next()
	e.expect("(")
	on := []string{}
	for e.peek() != ")" {
		on = append(on, e.next())
		if e.peek() == "," {
			e.next()
		}
	}
	e.expect(")")
	return on
}

func signature(l map[string]string, on []string) string {
	var keys []string
	if on == nil {
		for k := range l {
			if k != "__name__" {
				keys = append(keys, k)
			}
		}
	} else {
		keys = append(keys, on...)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, l[k])
	}
	return b.String()
}

func (e *evaluator) setOp(op string, on []string, l, r value) value {
	if l.isScalar || r.isScalar {
		e.fail("%s needs two vectors", op)
	}
	sigs := func(v []sample) map[string]bool {
		m := map[string]bool{}
		for _, s := range v {
			m[signature(s.labels, on)] = true
		}
		return m
	}
	var out []sample
	switch op {
	case "and", "unless":
		right := sigs(r.vector)
		for _, s := range l.vector {
			if right[signature(s.labels, on)] == (op == "and") {
				out = append(out, s)
			}
		}
	case "or":
		out = append(out, l.vector...)
		left := sigs(l.vector)
		for _, s := range r.vector {
			if !left[signature(s.labels, on)] {
				out = append(out, s)
			}
		}
	}
	return value{vector: out}
}

var identifier = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

func (e *evaluator) primary() value {
	t := e.next()
	switch {
	case t == "(":
		v := e.or()
		e.expect(")")
		return v
	case t[0] >= '0' && t[0] <= '9':
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			e.fail("bad number %q", t)
		}
		return value{isScalar: true, scalar: f}
	case identifier.MatchString(t) && e.peek() == "(":
		if t != "time" {
			e.fail("function %s is not supported", t)
		}
		e.expect("(")
		e.expect(")")
		return value{isScalar: true, scalar: e.now}
	case identifier.MatchString(t):
		return value{vector: e.selector(t)}
	}
	e.fail("unexpected %q", t)
	return value{}
}

func (e *evaluator) selector(name string) []sample {
	type matcher struct {
		label, op, value string
		re               *regexp.Regexp
	}
	ms := []matcher{{label: "__name__", op: "=", value: name}}
	if e.peek() == "{" {
		e.next()
		for e.peek() != "}" {
			m := matcher{label: e.next(), op: e.next()}
			q := e.next()
			v, err := strconv.Unquote(q)
			if err != nil {
				e.fail("bad label value %s", q)
			}
			m.value = v
			switch m.op {
			case "=", "!=":
			case "=~", "!~":
				m.re = regexp.MustCompile("^(?:" + v + ")$")
			default:
				e.fail("bad matcher %q", m.op)
			}
			ms = append(ms, m)
			if e.peek() == "," {
				e.next()
			}
		}
		e.expect("}")
	}
	if e.peek() == "[" {
		e.fail("range selectors are not supported")
	}
	var out []sample
	for _, s := range e.data {
		ok := true
		for _, m := range ms {
			v := s.labels[m.label]
			switch m.op {
			case "=":
				ok = ok && v == m.value
			case "!=":
				ok = ok && v != m.value
			case "=~":
				ok = ok && m.re.MatchString(v)
			case "!~":
				ok = ok && !m.re.MatchString(v)
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// lex splits a PromQL expression into tokens; # starts a comment to the end of the line.
func lex(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '_' || c == ':' || unicode.IsLetter(c):
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] == ':' || unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j]))) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case unicode.IsDigit(c):
			j := i + 1
			for j < len(s) && (unicode.IsDigit(rune(s[j])) || s[j] == '.') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		default:
			if i+1 < len(s) {
				switch two := s[i : i+2]; two {
				case "==", "!=", "<=", ">=", "=~", "!~":
					toks = append(toks, two)
					i += 2
					continue
				}
			}
			if !strings.ContainsRune("+-*/%^<>=(){}[],", c) {
				return nil, fmt.Errorf("unexpected %q in %q", c, s)
			}
			if c == '%' || c == '^' {
				return nil, fmt.Errorf("operator %q is not supported", c)
			}
			toks = append(toks, string(c))
			i++
		}
	}
	return toks, nil
}
