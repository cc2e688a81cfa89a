package legacy

import "strings"

// ExpandContainerCommandAndArgs expands $(VAR) references in the container's command and args
// with envs, as the kubelet does: an undefined $(VAR) stays as it is, $$ is an escaped $.
func ExpandContainerCommandAndArgs(command, args []string, envs []EnvVar) ([]string, []string) {
	m := EnvVarsToMap(envs)
	expand := func(in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = Expand(s, m)
		}
		return out
	}
	return expand(command), expand(args)
}

// Expand replaces $(VAR) in s with m[VAR] when VAR is defined, keeps it otherwise, and turns $$
// into $.
func Expand(s string, m map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := m[name]; ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
