package text

import (
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Command
		err  error
	}{
		{"create", "CREATE shopping\r\n", Command{Verb: Create, Bucket: "shopping"}, nil},
		{"create without line end", "CREATE shopping", Command{Verb: Create, Bucket: "shopping"}, nil},
		{"get", "GET shopping milk\r\n", Command{Verb: Get, Bucket: "shopping", Key: "milk"}, nil},
		{"put", "PUT shopping milk 1\r\n", Command{Verb: Put, Bucket: "shopping", Key: "milk", Value: "1"}, nil},
		{"delete", "DELETE shopping eggs\r\n", Command{Verb: Delete, Bucket: "shopping", Key: "eggs"}, nil},
		{"auth", "AUTH s3cret\r\n", Command{Verb: Auth, Password: "s3cret"}, nil},
		{"extra spaces", "  PUT   shopping \t milk    1  \r\n", Command{Verb: Put, Bucket: "shopping", Key: "milk", Value: "1"}, nil},
		{"tabs and bare newline", "GET\tshopping\tmilk\n", Command{Verb: Get, Bucket: "shopping", Key: "milk"}, nil},
		{"unicode space separates", "GET\u2003shopping\u0085milk", Command{Verb: Get, Bucket: "shopping", Key: "milk"}, nil},
		// The guide's String.split/1: "Divisions do not occur on
		// non-breaking whitespace."
		{"non-breaking spaces do not separate", "PUT b k 10\u00a0\u20ac\u2007\u202f", Command{Verb: Put, Bucket: "b", Key: "k", Value: "10\u00a0\u20ac\u2007\u202f"}, nil},
		{"non-breaking space inside a key", "PUT b k\u00a0x\r\n", Command{}, ErrUnknownCommand},
		{"odd bytes in tokens", "PUT b\xff\x00 k\x01 v\xfe", Command{Verb: Put, Bucket: "b\xff\x00", Key: "k\x01", Value: "v\xfe"}, nil},
		{"empty line", "\r\n", Command{}, ErrUnknownCommand},
		{"nothing", "", Command{}, ErrUnknownCommand},
		{"only spaces", "   \t  \r\n", Command{}, ErrUnknownCommand},
		{"unknown verb", "UNKNOWN shopping\r\n", Command{}, ErrUnknownCommand},
		{"lower-case verb", "create shopping\r\n", Command{}, ErrUnknownCommand},
		{"mixed-case verb", "Get shopping milk\r\n", Command{}, ErrUnknownCommand},
		{"create without bucket", "CREATE\r\n", Command{}, ErrUnknownCommand},
		{"create with two", "CREATE a b\r\n", Command{}, ErrUnknownCommand},
		{"get with one", "GET shopping\r\n", Command{}, ErrUnknownCommand},
		{"get with three", "GET shopping milk 1\r\n", Command{}, ErrUnknownCommand},
		{"put with two", "PUT shopping milk\r\n", Command{}, ErrUnknownCommand},
		{"put with four", "PUT shopping milk 1 2\r\n", Command{}, ErrUnknownCommand},
		{"put with many", "PUT a b c d e f g h\r\n", Command{}, ErrUnknownCommand},
		{"delete with one", "DELETE shopping\r\n", Command{}, ErrUnknownCommand},
		{"auth without password", "AUTH\r\n", Command{}, ErrUnknownCommand},
		{"auth with two", "AUTH a b\r\n", Command{}, ErrUnknownCommand},
		{"verb glued to argument", "CREATEshopping\r\n", Command{}, ErrUnknownCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.line)
			require.ErrorIs(t, err, tc.err)
			if tc.err == nil {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	line := "  PUT   shopping milk 1\r\n"
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Parse(line); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestCommandString(t *testing.T) {
	for _, c := range []Command{
		{Verb: Create, Bucket: "b"},
		{Verb: Get, Bucket: "b", Key: "k"},
		{Verb: Put, Bucket: "b", Key: "k", Value: "v"},
		{Verb: Delete, Bucket: "b", Key: "k"},
		{Verb: Auth, Password: "p"},
	} {
		got, err := Parse(c.String())
		require.NoError(t, err, c.String())
		assert.Equal(t, c, got)
	}
	assert.Empty(t, Command{}.String())
	assert.Empty(t, Verb(0).String())
	assert.Equal(t, "unknown", Verb(0).metric())
}

// reference is the guide's parser transcribed as plainly as possible:
// String.split, then a match on the token list. Elixir's String.split/1
// splits on Unicode white space but not on the non-breaking kinds.
func reference(line string) (Command, bool) {
	f := strings.FieldsFunc(line, func(r rune) bool {
		return unicode.IsSpace(r) && r != '\u00a0' && r != '\u2007' && r != '\u202f'
	})
	switch {
	case len(f) == 2 && f[0] == "CREATE":
		return Command{Verb: Create, Bucket: f[1]}, true
	case len(f) == 3 && f[0] == "GET":
		return Command{Verb: Get, Bucket: f[1], Key: f[2]}, true
	case len(f) == 4 && f[0] == "PUT":
		return Command{Verb: Put, Bucket: f[1], Key: f[2], Value: f[3]}, true
	case len(f) == 3 && f[0] == "DELETE":
		return Command{Verb: Delete, Bucket: f[1], Key: f[2]}, true
	case len(f) == 2 && f[0] == "AUTH":
		return Command{Verb: Auth, Password: f[1]}, true
	}
	return Command{}, false
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"CREATE shopping\r\n", "GET shopping milk\r\n", "PUT shopping milk 1\r\n",
		"DELETE shopping eggs\r\n", "AUTH pw\r\n", "UNKNOWN shopping\r\n", "\r\n", "",
		"  PUT  a\tb \u00a0c ", "get a b", "PUT a b c d", "GET \xff\xfe \x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, err := Parse(line)
		want, ok := reference(line)
		if ok != (err == nil) {
			t.Fatalf("Parse(%q) error %v; reference ok=%v", line, err, ok)
		}
		if err != nil {
			if err != ErrUnknownCommand {
				t.Fatalf("Parse(%q) = %v, want ErrUnknownCommand", line, err)
			}
			if got != (Command{}) {
				t.Fatalf("Parse(%q) = %+v with an error", line, got)
			}
			return
		}
		if got != want {
			t.Fatalf("Parse(%q) = %+v, reference %+v", line, got, want)
		}
		for _, tok := range []string{got.Bucket, got.Key, got.Value, got.Password} {
			if strings.ContainsFunc(tok, isSpace) {
				t.Fatalf("Parse(%q): token %q holds white space", line, tok)
			}
			if !strings.Contains(line, tok) {
				t.Fatalf("Parse(%q): token %q is not in the line", line, tok)
			}
		}
		// Formatting and parsing again is the identity.
		again, err := Parse(got.String())
		if err != nil || again != got {
			t.Fatalf("Parse(String(%+v)) = %+v, %v", got, again, err)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("PUT shopping milk 1\r\n"); err != nil {
			b.Fatal(err)
		}
	}
}
