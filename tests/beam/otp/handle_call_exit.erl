#!/usr/bin/env escript
%% Item 1: exit(boom) inside handle_call runs terminate(boom, State) before the caller exits.
-module(handle_call_exit).
-mode(compile).
-behaviour(gen_server).
-export([main/1, init/1, handle_call/3, handle_cast/2, terminate/2]).

main(_) ->
    Me = self(),
    {ok, Pid} = gen_server:start(?MODULE, Me, []),
    Ref = monitor(process, Pid),
    R = (catch gen_server:call(Pid, go)),
    io:format("call: ~p~n", [element(1, R)]),
    io:format("caller exit reason: ~p~n", [element(1, element(2, R))]),
    receive {terminated, Reason, State} -> io:format("terminate(~p, ~p)~n", [Reason, State])
    after 0 -> io:format("terminate did not run before the caller's exit~n") end,
    receive {'DOWN', Ref, process, Pid, Why} -> io:format("down: ~p~n", [Why]) end.

init(Me) -> {ok, {state, Me}}.
handle_call(go, _From, State) -> exit(boom), {reply, ok, State}.
handle_cast(_, S) -> {noreply, S}.
terminate(Reason, {state, Me} = S) -> Me ! {terminated, Reason, S}, ok.
