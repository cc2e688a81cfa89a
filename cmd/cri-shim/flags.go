package main

import (
	"encoding"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
)

// fieldValue is a flag.Value writing into one config key.
type fieldValue struct{ v reflect.Value }

func (f fieldValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	if s, ok := f.v.Interface().([]string); ok {
		return strings.Join(s, ",")
	}
	return fmt.Sprint(f.v.Interface())
}

func (f fieldValue) Set(s string) error {
	if tu, ok := f.v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return tu.UnmarshalText([]byte(s))
	}
	switch f.v.Kind() {
	case reflect.String:
		f.v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.v.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(n))
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported flag type %s", f.v.Type())
	}
	return nil
}

func (f fieldValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

// bindFlags registers one flag per config key. Their values are applied over the config file with
// applyFlags, so a flag given on the command line wins over the file.
func bindFlags(fs *flag.FlagSet, scratch *config.Config) {
	for _, f := range scratch.Fields() {
		usage := f.Doc + " (config key " + f.Key + ")"
		if f.Value.Kind() == reflect.Slice {
			usage += "; comma-separated"
		}
		fs.Var(fieldValue{f.Value}, f.Flag, usage)
	}
}

// applyFlags copies the flags set on the command line into cfg.
func applyFlags(fs *flag.FlagSet, scratch, cfg *config.Config) {
	byFlag := map[string]int{}
	for i, f := range scratch.Fields() {
		byFlag[f.Flag] = i
	}
	dst := cfg.Fields()
	src := scratch.Fields()
	fs.Visit(func(fl *flag.Flag) {
		if i, ok := byFlag[fl.Name]; ok {
			dst[i].Value.Set(src[i].Value)
		}
	})
}

// flagSet tells whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
