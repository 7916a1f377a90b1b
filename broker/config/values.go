package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

var errExpr = errors.New("not an integer expression")

// evalInt evaluates an integer value. MetaQ evaluates numeric settings as Aviator
// expressions, so files in the wild say "maxSegmentSize=1024*1024*1024"; we accept the
// integer subset: decimal literals, unary + and -, binary + - * / %, and parentheses.
// Overflow and division by zero are errors.
func evalInt(s string) (int64, error) {
	e := &exprParser{s: s}
	v, err := e.sum(0)
	if err != nil {
		return 0, err
	}
	e.space()
	if e.i != len(e.s) {
		return 0, errExpr
	}
	return v, nil
}

type exprParser struct {
	s string
	i int
}

const maxExprDepth = 32

func (e *exprParser) space() {
	for e.i < len(e.s) && (e.s[e.i] == ' ' || e.s[e.i] == '\t') {
		e.i++
	}
}

func (e *exprParser) peek() byte {
	e.space()
	if e.i < len(e.s) {
		return e.s[e.i]
	}
	return 0
}

func (e *exprParser) sum(depth int) (int64, error) {
	v, err := e.product(depth)
	for err == nil {
		op := e.peek()
		if op != '+' && op != '-' {
			break
		}
		e.i++
		var r int64
		if r, err = e.product(depth); err == nil {
			v, err = arith(op, v, r)
		}
	}
	return v, err
}

func (e *exprParser) product(depth int) (int64, error) {
	v, err := e.unary(depth)
	for err == nil {
		op := e.peek()
		if op != '*' && op != '/' && op != '%' {
			break
		}
		e.i++
		var r int64
		if r, err = e.unary(depth); err == nil {
			v, err = arith(op, v, r)
		}
	}
	return v, err
}

func (e *exprParser) unary(depth int) (int64, error) {
	if depth > maxExprDepth {
		return 0, errExpr
	}
	switch e.peek() {
	case '-':
		e.i++
		v, err := e.unary(depth + 1)
		if err != nil || v == math.MinInt64 {
			return 0, errExpr
		}
		return -v, nil
	case '+':
		e.i++
		return e.unary(depth + 1)
	case '(':
		e.i++
		v, err := e.sum(depth + 1)
		if err != nil || e.peek() != ')' {
			return 0, errExpr
		}
		e.i++
		return v, nil
	}
	start := e.i
	for e.i < len(e.s) && e.s[e.i] >= '0' && e.s[e.i] <= '9' {
		e.i++
	}
	return strconv.ParseInt(e.s[start:e.i], 10, 64)
}

func arith(op byte, a, b int64) (int64, error) {
	switch op {
	case '+':
		if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
			return 0, errExpr
		}
		return a + b, nil
	case '-':
		if (b < 0 && a > math.MaxInt64+b) || (b > 0 && a < math.MinInt64+b) {
			return 0, errExpr
		}
		return a - b, nil
	case '*':
		if a != 0 && b != 0 {
			p := a * b
			if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
				return 0, errExpr
			}
			return p, nil
		}
		return 0, nil
	}
	if b == 0 || (a == math.MinInt64 && b == -1) {
		return 0, errExpr
	}
	if op == '/' {
		return a / b, nil
	}
	return a % b, nil
}

// parseBool accepts true/false in any case (MetaQ's spelling) and strconv's 1/0/t/f.
func parseBool(s string) (bool, error) {
	return strconv.ParseBool(strings.ToLower(s))
}
