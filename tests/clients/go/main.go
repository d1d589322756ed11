// A client on golang.org/x/crypto/ssh (and github.com/pkg/sftp), driven by
// tests/clients.rs with the same arguments and JSON result as
// paramiko_client.py. Built offline from Debian's packages
// (golang-golang-x-crypto-dev, golang-github-pkg-sftp-dev) in GOPATH mode.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

type args struct {
	port                       int
	user, hostKey, code, label string
	keys                       []string
	execCmd, pty               *string
	putLocal, putRemote        string
	getRemote, getLocal        string
}

func parseArgs() args {
	var a args
	v := os.Args[1:]
	for i := 0; i < len(v); i++ {
		next := func() string { i++; return v[i] }
		switch v[i] {
		case "--port":
			a.port, _ = strconv.Atoi(next())
		case "--user":
			a.user = next()
		case "--host-key":
			a.hostKey = next()
		case "--key":
			a.keys = append(a.keys, next())
		case "--label":
			a.label = next()
		case "--code":
			a.code = next()
		case "--exec":
			s := next()
			a.execCmd = &s
		case "--pty":
			s := next()
			a.pty = &s
		case "--put":
			a.putLocal, a.putRemote = next(), next()
		case "--get":
			a.getRemote, a.getLocal = next(), next()
		default:
			fmt.Fprintf(os.Stderr, "unknown argument %q\n", v[i])
			os.Exit(2)
		}
	}
	return a
}

// watched records whether the server asked for a signature with this key:
// x/crypto first offers each key unsigned and signs only the accepted one.
type watched struct {
	ssh.Signer
	offered, signed bool
}

func (w *watched) PublicKey() ssh.PublicKey { w.offered = true; return w.Signer.PublicKey() }
func (w *watched) Sign(r io.Reader, d []byte) (*ssh.Signature, error) {
	w.signed = true
	return w.Signer.Sign(r, d)
}

type execResult struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
}

type ptyResult struct {
	Output string `json:"output"`
	Exit   int    `json:"exit"`
}

type result struct {
	Client    string      `json:"client"`
	Methods   []string    `json:"methods"`
	LoginSecs float64     `json:"login_secs,omitempty"`
	Exec      *execResult `json:"exec,omitempty"`
	Pty       *ptyResult  `json:"pty,omitempty"`
	Sftp      bool        `json:"sftp,omitempty"`
	Error     string      `json:"error,omitempty"`
}

func exitCode(err error) (int, error) {
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), nil
	}
	return 0, err
}

func runExec(c *ssh.Client, cmd string) (*execResult, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	code, err := exitCode(s.Run(cmd))
	if err != nil {
		return nil, err
	}
	return &execResult{out.String(), errb.String(), code}, nil
}

func runPty(c *ssh.Client, script string) (*ptyResult, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 30, 100, ssh.TerminalModes{}); err != nil {
		return nil, err
	}
	// A pty merges stderr into stdout; a buffer each all the same, since
	// two concurrent io.Copy into one bytes.Buffer (ReadFrom) lose data.
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	in, err := s.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := s.Shell(); err != nil {
		return nil, err
	}
	if _, err := in.Write([]byte(script)); err != nil {
		return nil, err
	}
	code, err := exitCode(s.Wait())
	if err != nil {
		return nil, err
	}
	return &ptyResult{out.String() + errb.String(), code}, nil
}

func copyFile(dst io.Writer, src io.Reader) error {
	_, err := io.Copy(dst, src)
	return err
}

func transfer(c *ssh.Client, a args) error {
	sc, err := sftp.NewClient(c)
	if err != nil {
		return err
	}
	defer sc.Close()
	if a.putLocal != "" {
		src, err := os.Open(a.putLocal)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := sc.Create(a.putRemote)
		if err != nil {
			return err
		}
		if err := copyFile(dst, src); err != nil {
			return err
		}
		if err := dst.Close(); err != nil {
			return err
		}
	}
	if a.getRemote != "" {
		src, err := sc.Open(a.getRemote)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.Create(a.getLocal)
		if err != nil {
			return err
		}
		if err := copyFile(dst, src); err != nil {
			return err
		}
		return dst.Close()
	}
	return nil
}

func run(a args, r *result, step *string) error {
	known, err := os.ReadFile(a.hostKey)
	if err != nil {
		return err
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey(known)
	if err != nil {
		return err
	}
	var signers []*watched
	for _, k := range a.keys {
		pem, err := os.ReadFile(k)
		if err != nil {
			return err
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return err
		}
		signers = append(signers, &watched{Signer: s})
	}
	answered := false
	auth := []ssh.AuthMethod{
		ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			out := make([]ssh.Signer, len(signers))
			for i, s := range signers {
				out[i] = s
			}
			return out, nil
		}),
	}
	if a.code != "" {
		auth = append(auth, ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = a.code
					answered = true
				}
				return answers, nil
			}))
	}
	cfg := &ssh.ClientConfig{
		User:            a.user,
		Auth:            auth,
		HostKeyCallback: ssh.FixedHostKey(hostKey),
		Timeout:         10 * time.Second,
	}
	t0 := time.Now()
	*step = "login"
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.port)), 10*time.Second)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(conn, "127.0.0.1", cfg)
	for _, s := range signers {
		if s.signed {
			r.Methods = append(r.Methods, "publickey")
		} else if s.offered {
			r.Methods = append(r.Methods, "publickey(refused)")
		}
	}
	if answered {
		r.Methods = append(r.Methods, "keyboard-interactive")
	}
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Time{})
	r.LoginSecs = float64(time.Since(t0).Milliseconds()) / 1000
	c := ssh.NewClient(cc, chans, reqs)
	defer c.Close()
	if a.execCmd != nil {
		*step = "exec"
		if r.Exec, err = runExec(c, *a.execCmd); err != nil {
			return err
		}
	}
	if a.pty != nil {
		*step = "pty"
		if r.Pty, err = runPty(c, *a.pty); err != nil {
			return err
		}
	}
	if a.putLocal != "" || a.getRemote != "" {
		*step = "sftp"
		if err := transfer(c, a); err != nil {
			return err
		}
		r.Sftp = true
	}
	return nil
}

func main() {
	a := parseArgs()
	r := result{Client: a.label + " (" + runtime.Version() + ")", Methods: []string{}}
	step := "connect"
	err := run(a, &r, &step)
	if err != nil {
		r.Error = step + ": " + err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	if err != nil {
		os.Exit(1)
	}
}
